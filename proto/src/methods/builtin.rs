//! The methods of SyncManager's built-in types and of the server itself,
//! each declared once ([`shared_methods!`](crate::shared_methods)).
//!
//! Declaration order is the order `get_methods` answers (CPython's
//! exposed lists, plus what later CPython versions added); a name that
//! starts with `_` is exposed only where it says `exposed`. A type whose
//! registrations expose different subsets (a `Lock` and a `Semaphore`
//! share one object) declares the union; the narrower registration names
//! its subset by variant.

crate::shared_methods! {
    /// What every shared object answers, exposed or not (CPython's
    /// `Server.fallback_mapping`).
    pub enum CommonMethod {
        /// `repr(proxy)`: the referent's `repr()`.
        Repr = "__repr__": read_only,
        /// `str(proxy)`: the same.
        Str = "__str__": read_only,
        /// A copy of the referent's value (`_getvalue()`).
        GetValue = "#GETVALUE": read_only,
    }
}

crate::shared_methods! {
    /// A shared `dict`: CPython 3.11's `DictProxy`, plus 3.9's `|`/`|=`
    /// and `__reversed__`.
    pub enum DictMethod {
        /// `key in d`.
        Contains = "__contains__": exposed.read_only(),
        /// `del d[key]`.
        DelItem = "__delitem__": exposed,
        /// `d[key]`.
        GetItem = "__getitem__": exposed.read_only(),
        /// `iter(d)`: a shared iterator over a snapshot of the keys.
        Iter = "__iter__": returns("Iterator").read_only(),
        /// `len(d)`.
        Len = "__len__": exposed.read_only(),
        /// `d[key] = value`.
        SetItem = "__setitem__": exposed,
        /// `d.clear()`.
        Clear = "clear",
        /// `d.copy()`: a plain dict.
        Copy = "copy": read_only,
        /// `d.get(key, default=None)`.
        Get = "get": read_only,
        /// `d.items()`.
        Items = "items": read_only,
        /// `d.keys()`.
        Keys = "keys": read_only,
        /// `d.pop(key[, default])`.
        Pop = "pop",
        /// `d.popitem()`.
        PopItem = "popitem",
        /// `d.setdefault(key, default=None)`.
        SetDefault = "setdefault",
        /// `d.update(other=(), **kwargs)`.
        Update = "update",
        /// `d.values()`.
        Values = "values": read_only,
        /// `d | other`: a plain dict.
        Or = "__or__": exposed.read_only(),
        /// `d |= other`.
        IOr = "__ior__": exposed,
        /// `reversed(d)`: the keys, last first.
        Reversed = "__reversed__": exposed.read_only(),
        /// `iter(d.items())`: a shared `Iterator` over a snapshot of the
        /// `(key, value)` pairs, which the SDK pages through with
        /// [`IteratorMethod::NextChunk`]. Not CPython's (its clients never
        /// call it); exposed, as every method returning an object is.
        IterItems = "_iter_items": returns("Iterator").read_only(),
    }
}

crate::shared_methods! {
    /// A shared `list`: CPython 3.11's `ListProxy`, plus `clear` and `copy`.
    pub enum ListMethod {
        /// `l + other`: a plain list.
        Add = "__add__": exposed.read_only(),
        /// `x in l`.
        Contains = "__contains__": exposed.read_only(),
        /// `del l[i]`, `del l[a:b]`.
        DelItem = "__delitem__": exposed,
        /// `l[i]`, `l[a:b]`.
        GetItem = "__getitem__": exposed.read_only(),
        /// `len(l)`.
        Len = "__len__": exposed.read_only(),
        /// `l * n`: a plain list.
        Mul = "__mul__": exposed.read_only(),
        /// `reversed(l)`: a plain list, last first.
        Reversed = "__reversed__": exposed.read_only(),
        /// `n * l`.
        RMul = "__rmul__": exposed.read_only(),
        /// `l[i] = x`, `l[a:b] = xs`.
        SetItem = "__setitem__": exposed,
        /// `l.append(x)`.
        Append = "append",
        /// `l.count(x)`.
        Count = "count": read_only,
        /// `l.extend(xs)`.
        Extend = "extend",
        /// `l.index(x[, start[, stop]])`.
        Index = "index": read_only,
        /// `l.insert(i, x)`.
        Insert = "insert",
        /// `l.pop(i=-1)`.
        Pop = "pop",
        /// `l.remove(x)`.
        Remove = "remove",
        /// `l.reverse()`.
        Reverse = "reverse",
        /// `l.sort(key=None, reverse=False)` (no `key` over the wire).
        Sort = "sort",
        /// `l *= n`.
        IMul = "__imul__": exposed,
        /// `l += xs`.
        IAdd = "__iadd__": exposed,
        /// `l.clear()`.
        Clear = "clear",
        /// `l.copy()`: a plain list.
        Copy = "copy": read_only,
    }
}

crate::shared_methods! {
    /// A shared iterator, as `iter(d)` returns (CPython's `IteratorProxy`).
    pub enum IteratorMethod {
        /// `next(it)`: the next item, or `StopIteration`.
        Next = "__next__": exposed,
        /// `it.close()`.
        Close = "close",
        /// `_next_chunk(n)`: the next items at once, as the tuple
        /// `(items, left)` — up to `n` of them (fewer when more would take
        /// the answer past the server's per-operation limit), and how
        /// many remain. Not CPython's (its clients never call it), but
        /// exposed so that the SDK's `DictProxy` iterates any dict a
        /// server registers.
        NextChunk = "_next_chunk": exposed,
    }
}

crate::shared_methods! {
    /// A shared `queue.Queue` (also served as `JoinableQueue`).
    pub enum QueueMethod {
        /// `q.empty()`.
        Empty = "empty": read_only,
        /// `q.full()`.
        Full = "full": read_only,
        /// `q.get(block=True, timeout=None)`.
        Get = "get": blocking,
        /// `q.get_nowait()`.
        GetNowait = "get_nowait",
        /// `q.join()`: until every item put was marked done.
        Join = "join": blocking.read_only(),
        /// `q.put(item, block=True, timeout=None)`.
        Put = "put": blocking,
        /// `q.put_nowait(item)`.
        PutNowait = "put_nowait",
        /// `q.qsize()`.
        Qsize = "qsize": read_only,
        /// `q.task_done()`.
        TaskDone = "task_done",
        /// `q._unget(item)`: gives back an item a `get` took whose caller
        /// was gone by the time it arrived (an async client's cancelled
        /// `get` that lost the race with its answer): to the longest
        /// waiting getter, or else to the front of the queue. The inverse
        /// of a take: the unfinished count is unchanged. Not CPython's.
        Unget = "_unget": exposed,
    }
}

crate::shared_methods! {
    /// A shared `Lock`, `RLock`, `Semaphore` or `BoundedSemaphore` (one
    /// object serves the four). A `Lock` exposes all three public methods;
    /// the others `acquire` and `release` only, as CPython's
    /// `AcquirerProxy`.
    pub enum SemaphoreMethod {
        /// `acquire(blocking=True, timeout=None)`.
        Acquire = "acquire": blocking,
        /// `release()`.
        Release = "release",
        /// `locked()` (a `Lock`'s).
        Locked = "locked": read_only,
        /// `with lock:`, entering: `acquire()`.
        Enter = "__enter__": blocking,
        /// `with lock:`, leaving: `release()`.
        Exit = "__exit__",
    }
}

crate::shared_methods! {
    /// A shared `Condition` (CPython's `ConditionProxy`).
    pub enum ConditionMethod {
        /// `acquire(blocking=True, timeout=None)` of the condition's lock.
        Acquire = "acquire": blocking,
        /// `release()` of the condition's lock.
        Release = "release",
        /// `wait(timeout=None)`.
        Wait = "wait": blocking,
        /// `notify(n=1)`.
        Notify = "notify",
        /// `notify_all()`.
        NotifyAll = "notify_all",
        /// `with cond:`, entering.
        Enter = "__enter__": blocking,
        /// `with cond:`, leaving.
        Exit = "__exit__",
    }
}

crate::shared_methods! {
    /// A shared `Event` (CPython's `EventProxy`).
    pub enum EventMethod {
        /// `is_set()`.
        IsSet = "is_set": read_only,
        /// `set()`.
        Set = "set",
        /// `clear()`.
        Clear = "clear",
        /// `wait(timeout=None)`.
        Wait = "wait": blocking.read_only(),
    }
}

crate::shared_methods! {
    /// A shared `Barrier` (CPython's `BarrierProxy`).
    pub enum BarrierMethod {
        /// `parties`, `n_waiting`, `broken`, read by name.
        GetAttribute = "__getattribute__": exposed.read_only(),
        /// `wait(timeout=None)`.
        Wait = "wait": blocking,
        /// `abort()`.
        Abort = "abort",
        /// `reset()`.
        Reset = "reset",
    }
}

crate::shared_methods! {
    /// A shared `Namespace` (CPython's `NamespaceProxy`).
    pub enum NamespaceMethod {
        /// `ns.name`.
        GetAttribute = "__getattribute__": exposed.read_only(),
        /// `ns.name = value`.
        SetAttr = "__setattr__": exposed,
        /// `del ns.name`.
        DelAttr = "__delattr__": exposed,
    }
}

crate::shared_methods! {
    /// A shared `Value` (CPython's `ValueProxy`: `value` is `get`/`set`).
    pub enum ValueMethod {
        /// The value.
        Get = "get": read_only,
        /// Replaces the value.
        Set = "set",
    }
}

crate::shared_methods! {
    /// A shared `Array` (CPython's `ArrayProxy`).
    pub enum ArrayMethod {
        /// `len(a)`.
        Len = "__len__": exposed.read_only(),
        /// `a[i]`, `a[a:b]`.
        GetItem = "__getitem__": exposed.read_only(),
        /// `a[i] = x`, `a[a:b] = xs`.
        SetItem = "__setitem__": exposed,
    }
}

crate::shared_methods! {
    /// The server's own calls (requests with no object): Python's
    /// `Server.public` plus `mpserver`'s.
    pub enum ServerMethod {
        /// A round trip that does nothing.
        Ping = "ping",
        /// CPython's `dummy`: the same.
        Dummy = "dummy",
        /// `create(typeid, *args, **kwds)`: a new object and its proxy.
        Create = "create",
        /// `incref(id)`.
        Incref = "incref",
        /// `decref(id)`.
        Decref = "decref",
        /// `transit(id, lease)`: a reference held for another connection.
        Transit = "transit",
        /// `receive(ticket)`: takes over a reference in transit.
        Receive = "receive",
        /// `get_methods(id)`: the exposed list of an object.
        GetMethods = "get_methods",
        /// The same, by its other name.
        Exposed = "exposed",
        /// `number_of_objects()`.
        NumberOfObjects = "number_of_objects",
        /// `debug_info()`.
        DebugInfo = "debug_info",
        /// `status()`.
        Status = "status",
        /// `typeids()`.
        Typeids = "typeids",
        /// `shutdown()`.
        Shutdown = "shutdown",
        /// `publish(name, id, replace=False)`: names an object.
        Publish = "publish",
        /// `unpublish(name)`: removes a name.
        Unpublish = "unpublish",
        /// `lookup(name)`: a proxy to the object a name names.
        Lookup = "lookup",
        /// `names()`: every name, its object and typeid.
        Names = "names",
        /// `cancel(request_id)`: drops this connection's blocking call
        /// `request_id` if it is still waiting, as if its connection had
        /// ended (nothing is taken, nothing stays acquired), and answers
        /// whether it did. The cancelled call itself is still answered,
        /// with `RuntimeError`; a call that finished first keeps its
        /// answer. Not CPython's.
        Cancel = "cancel",
    }
}

/// The declared methods of the built-in `typeid` (SyncManager's names),
/// for a client that knows an object by typeid: whether a call may wait,
/// say. `None` for any other typeid.
pub fn methods_of(typeid: &str) -> Option<&'static [crate::methods::MethodSpec]> {
    Some(match typeid {
        "dict" => DictMethod::TABLE,
        "list" => ListMethod::TABLE,
        "Iterator" => IteratorMethod::TABLE,
        "Queue" | "JoinableQueue" => QueueMethod::TABLE,
        "Lock" | "RLock" | "Semaphore" | "BoundedSemaphore" => SemaphoreMethod::TABLE,
        "Condition" => ConditionMethod::TABLE,
        "Event" => EventMethod::TABLE,
        "Barrier" => BarrierMethod::TABLE,
        "Namespace" => NamespaceMethod::TABLE,
        "Value" => ValueMethod::TABLE,
        "Array" => ArrayMethod::TABLE,
        _ => return None,
    })
}

/// Whether `method` of the built-in `typeid` waits for something to
/// happen (a queue's `get`, a lock's `acquire`, an event's `wait`): a call
/// a broken connection cancels on the server before it had any effect,
/// which a client may send again once reconnected. A queue's `put` waits
/// only for room, and its effect is done as soon as it returns: not one.
pub fn waits_for_event(typeid: &str, method: &str) -> bool {
    method != QueueMethod::Put.name()
        && methods_of(typeid)
            .is_some_and(|table| table.iter().any(|m| m.blocking && m.name == method))
}
