//! The object table: every live shared object by id, with its refcount.
//!
//! Python's `Server.id_to_obj` and `id_to_refcount` in one concurrent map.
//! `create` puts an object in with one reference; `incref`/`decref` move
//! the count; the object is disposed of when it reaches zero. References
//! are owned by sessions (see [`crate::session`]) and by containers that
//! store a proxy token (see [`crate::held`]); the table only counts them.
//!
//! The table owns the server's memory [`Budget`]: every live object holds
//! a [`Charge`] for its own bytes ([`object_bytes`]), so creating objects
//! is bounded like storing values; the values objects store are charged
//! through [`Held`](crate::held::Held).
//!
//! Disposal can cascade — a dying list releases the lists it held — so
//! objects are dropped outside the map's locks, one at a time from a
//! per-thread queue: a chain of a million nested objects is freed without
//! recursion.
//!
//! Counting alone never frees a cycle (a list that holds itself, two
//! dicts that hold each other), so [`Table::collect_cycles`] finds the
//! objects every one of whose references comes from another of them
//! (CPython's garbage collector's rule, on the references objects report
//! through [`SharedObject::references`]) and frees them. It runs before
//! `number_of_objects` and `debug_info` answer (they count the live
//! objects, as Python's own tests `gc.collect()` before counting), and by
//! itself once enough references were dropped without freeing their
//! object ([`Table::collect_if_due`]), so its cost stays proportional to
//! the work that made it due.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use mp_proto::{ObjectId, RemoteError, Token};

use crate::budget::{Budget, Charge};
use crate::errors::key_error_msg;
use crate::object::SharedObject;
use crate::registry::TypeSpec;

/// One live object.
struct Entry {
    /// The object itself; calls clone the `Arc` and run outside the map.
    object: Arc<dyn SharedObject>,
    /// Its registered type: typeid, exposed methods, `method_to_typeid`.
    spec: Arc<TypeSpec>,
    /// References held by sessions and containers.
    refs: u64,
    /// The object's bytes, given back when it is disposed of.
    _charge: Charge,
    /// Whether a data directory keeps it ([`crate::durable`]).
    persisted: bool,
}

/// Called with the id of every persisted object disposed of (not at
/// [`Table::clear`]): the data directory's log records its end.
pub type DisposeHook = Box<dyn Fn(ObjectId) + Send + Sync>;

pub use mp_proto::reports::ObjectInfo;

/// Every live shared object of one server.
pub struct Table {
    objects: DashMap<ObjectId, Entry>,
    /// The next id handed out. Ids start at a random point below 2^52 so
    /// that tokens of two servers rarely share an id (a stored token whose
    /// id is not here is treated as foreign) and every id is exact in a
    /// JSON number.
    next_id: AtomicU64,
    /// What stored values and objects may take.
    budget: Arc<Budget>,
    /// Told of each persisted object's disposal.
    on_dispose: std::sync::OnceLock<DisposeHook>,
    /// References dropped without freeing their object since the last
    /// cycle collection (each may have left a cycle behind).
    suspects: AtomicU64,
    /// What the last collection walked (objects and references): the
    /// next one is due after at least as many suspects.
    last_walk: AtomicU64,
}

/// The fewest suspects that make a collection due.
const MIN_SUSPECTS: u64 = 1024;

/// Ids stay below this so they are exact as JSON numbers and `i64`s.
const ID_LIMIT: u64 = 1 << 52;

impl Table {
    /// An empty table with the default [`Limits`](crate::Limits)' budget.
    pub fn new() -> Arc<Table> {
        Table::with_budget(Arc::new(Budget::default()))
    }

    /// An empty table charging `budget`.
    pub fn with_budget(budget: Arc<Budget>) -> Arc<Table> {
        let start = rand::random::<u64>() % (ID_LIMIT / 2) + 1;
        Arc::new(Table {
            objects: DashMap::new(),
            next_id: AtomicU64::new(start),
            budget,
            on_dispose: std::sync::OnceLock::new(),
            suspects: AtomicU64::new(0),
            last_walk: AtomicU64::new(0),
        })
    }

    /// The memory budget of this table's objects and stored values.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Adds `object` with one reference and returns its id; `MemoryError`
    /// (and the object dropped) if its bytes would pass the budget.
    pub fn insert(
        &self,
        object: Arc<dyn SharedObject>,
        spec: Arc<TypeSpec>,
    ) -> Result<ObjectId, RemoteError> {
        let charge = self.budget.charge(object_bytes(&*object))?;
        let mut entry = Some((object, charge));
        loop {
            let raw = self.next_id.fetch_add(1, Ordering::Relaxed) % ID_LIMIT;
            let id = ObjectId(raw.max(1));
            if let MapEntry::Vacant(slot) = self.objects.entry(id) {
                if let Some((object, charge)) = entry.take() {
                    slot.insert(Entry {
                        object,
                        spec,
                        refs: 1,
                        _charge: charge,
                        persisted: false,
                    });
                }
                return Ok(id);
            }
        }
    }

    /// Adds `object` under `id` with one reference (an object restored
    /// from a data directory keeps the id its clients' tokens carry);
    /// `KeyError` if the id is taken or out of range, `MemoryError` past
    /// the budget.
    pub fn insert_with_id(
        &self,
        id: ObjectId,
        object: Arc<dyn SharedObject>,
        spec: Arc<TypeSpec>,
    ) -> Result<(), RemoteError> {
        if id.0 == 0 || id.0 >= ID_LIMIT {
            return Err(key_error_msg(format!("object id '{id}' is out of range")));
        }
        let charge = self.budget.charge(object_bytes(&*object))?;
        match self.objects.entry(id) {
            MapEntry::Vacant(slot) => {
                slot.insert(Entry {
                    object,
                    spec,
                    refs: 1,
                    _charge: charge,
                    persisted: false,
                });
                Ok(())
            }
            MapEntry::Occupied(_) => Err(key_error_msg(format!("object id '{id}' is taken"))),
        }
    }

    /// The object with `id`, its type, and whether it is persisted.
    pub fn lookup(&self, id: ObjectId) -> Option<(Arc<dyn SharedObject>, Arc<TypeSpec>, bool)> {
        self.objects
            .get(&id)
            .map(|e| (Arc::clone(&e.object), Arc::clone(&e.spec), e.persisted))
    }

    /// Whether `id` is alive and persisted.
    pub fn is_persisted(&self, id: ObjectId) -> bool {
        self.objects.get(&id).is_some_and(|e| e.persisted)
    }

    /// Marks `id` persisted; `false` if it is gone.
    pub(crate) fn mark_persisted(&self, id: ObjectId) -> bool {
        match self.objects.get_mut(&id) {
            Some(mut e) => {
                e.persisted = true;
                true
            }
            None => false,
        }
    }

    /// Sets what is told of each persisted object's disposal (once).
    pub(crate) fn set_dispose_hook(&self, hook: DisposeHook) {
        let _ = self.on_dispose.set(hook);
    }

    /// The object with `id` and its type, if it is alive.
    pub fn get(&self, id: ObjectId) -> Option<(Arc<dyn SharedObject>, Arc<TypeSpec>)> {
        self.objects
            .get(&id)
            .map(|e| (Arc::clone(&e.object), Arc::clone(&e.spec)))
    }

    /// Adds a reference to `id`; returns the new count.
    pub fn incref(&self, id: ObjectId) -> Result<u64, RemoteError> {
        match self.objects.get_mut(&id) {
            Some(mut e) => {
                e.refs += 1;
                Ok(e.refs)
            }
            None => Err(no_such_object(id)),
        }
    }

    /// Adds a reference to the object `token` names if it lives here (same
    /// id and typeid); `false` for a foreign or dead token.
    pub fn incref_token(&self, token: &Token) -> bool {
        match self.objects.get_mut(&token.id) {
            Some(mut e) if e.spec.typeid == token.typeid => {
                e.refs += 1;
                true
            }
            _ => false,
        }
    }

    /// Drops a reference to `id`, disposing of the object at zero; returns
    /// the count left.
    pub fn decref(&self, id: ObjectId) -> Result<u64, RemoteError> {
        self.decref_n(id, 1)
    }

    /// Drops `n` references to `id` at once (a session ending).
    pub fn decref_n(&self, id: ObjectId, n: u64) -> Result<u64, RemoteError> {
        let dead = match self.objects.entry(id) {
            MapEntry::Occupied(mut slot) => {
                let e = slot.get_mut();
                e.refs = e.refs.saturating_sub(n);
                if e.refs > 0 {
                    self.suspects.fetch_add(1, Ordering::Relaxed);
                    return Ok(e.refs);
                }
                let dead = slot.remove();
                if dead.persisted {
                    if let Some(hook) = self.on_dispose.get() {
                        hook(id);
                    }
                }
                dead.object
            }
            MapEntry::Vacant(_) => return Err(no_such_object(id)),
        };
        // The map's shard lock is released here; dropping may cascade.
        dispose(dead);
        Ok(0)
    }

    /// The reference count of `id`, if it is alive.
    pub fn refcount(&self, id: ObjectId) -> Option<u64> {
        self.objects.get(&id).map(|e| e.refs)
    }

    /// How many objects are alive (`number_of_objects`).
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is alive.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every live object, by id (`debug_info`).
    pub fn snapshot(&self) -> Vec<ObjectInfo> {
        let mut out: Vec<ObjectInfo> = self
            .objects
            .iter()
            .map(|e| ObjectInfo {
                id: *e.key(),
                typeid: e.spec.typeid.clone(),
                refcount: e.refs,
                names: Vec::new(),
            })
            .collect();
        out.sort_by_key(|o| o.id);
        out
    }

    /// How many live objects each typeid has.
    pub fn counts_by_typeid(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for e in self.objects.iter() {
            *out.entry(e.spec.typeid.clone()).or_insert(0) += 1;
        }
        out
    }

    /// Runs [`collect_cycles`](Self::collect_cycles) if enough references
    /// were dropped without freeing their object since the last one (at
    /// least `MIN_SUSPECTS`, 1,024, and as many as the last one walked).
    pub fn collect_if_due(&self) {
        let due = self.last_walk.load(Ordering::Relaxed).max(MIN_SUSPECTS);
        if self.suspects.load(Ordering::Relaxed) >= due {
            self.collect_cycles();
        }
    }

    /// Frees every object that is alive only because other such objects
    /// hold it (reference cycles through stored proxies); returns how many
    /// it freed.
    ///
    /// It walks each live object's [`references`](SharedObject::references)
    /// once: an object with more references than the walk found is held
    /// from outside (a session, a name, an object that does not report),
    /// and so is everything it reaches. What is left is checked again
    /// before it is freed — every reference to it must still come from
    /// inside the set — so a concurrent call can only make it free less.
    pub fn collect_cycles(&self) -> usize {
        self.suspects.store(0, Ordering::Relaxed);
        let live: Vec<(ObjectId, u64, Arc<dyn SharedObject>)> = self
            .objects
            .iter()
            .map(|e| (*e.key(), e.refs, Arc::clone(&e.object)))
            .collect();
        let index: HashMap<ObjectId, usize> = live
            .iter()
            .enumerate()
            .map(|(i, (id, _, _))| (*id, i))
            .collect();
        let mut outside: Vec<i128> = live.iter().map(|(_, refs, _)| i128::from(*refs)).collect();
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); live.len()];
        let mut ids = Vec::new();
        let mut walked = live.len() as u64;
        for (i, (_, _, object)) in live.iter().enumerate() {
            ids.clear();
            object.references(&mut ids);
            walked += ids.len() as u64;
            for id in &ids {
                if let Some(&j) = index.get(id) {
                    outside[j] -= 1;
                    edges[i].push(j);
                }
            }
        }
        self.last_walk.store(walked, Ordering::Relaxed);
        // Everything reachable from an object held from outside is alive.
        let mut alive = vec![false; live.len()];
        let mut stack: Vec<usize> = (0..live.len()).filter(|&i| outside[i] > 0).collect();
        for &i in &stack {
            alive[i] = true;
        }
        while let Some(i) = stack.pop() {
            for &j in &edges[i] {
                if !alive[j] {
                    alive[j] = true;
                    stack.push(j);
                }
            }
        }
        let garbage: HashMap<ObjectId, usize> = (0..live.len())
            .filter(|&i| !alive[i])
            .map(|i| (live[i].0, i))
            .collect();
        if garbage.is_empty() || !self.closed(&garbage, &live) {
            return 0;
        }
        let mut dead = Vec::with_capacity(garbage.len());
        for &id in garbage.keys() {
            if let Some((_, e)) = self.objects.remove(&id) {
                if e.persisted {
                    if let Some(hook) = self.on_dispose.get() {
                        hook(id);
                    }
                }
                dead.push(e.object);
            }
        }
        drop(live);
        let freed = dead.len();
        // The map's locks are not held; each one's stored values release
        // their references (to the others, already gone, or to live
        // objects outside the set).
        for object in dead {
            dispose(object);
        }
        freed
    }

    /// Whether every reference to each object of `set` (id → index in
    /// `live`) comes, read again now, from an object of `set`.
    fn closed(
        &self,
        set: &HashMap<ObjectId, usize>,
        live: &[(ObjectId, u64, Arc<dyn SharedObject>)],
    ) -> bool {
        let mut inside: HashMap<ObjectId, u64> = HashMap::with_capacity(set.len());
        let mut ids = Vec::new();
        for &i in set.values() {
            ids.clear();
            live[i].2.references(&mut ids);
            for id in &ids {
                if set.contains_key(id) {
                    *inside.entry(*id).or_insert(0) += 1;
                }
            }
        }
        set.keys().all(|id| {
            let refs = self.refcount(*id);
            refs.is_some() && refs == inside.get(id).copied()
        })
    }

    /// Disposes of every object (server shutdown).
    pub fn clear(&self) {
        let ids: Vec<ObjectId> = self.objects.iter().map(|e| *e.key()).collect();
        for id in ids {
            if let Some((_, e)) = self.objects.remove(&id) {
                dispose(e.object);
            }
        }
    }
}

/// What a live object is charged beyond its own struct: its table slot,
/// a session's reference to it, and the state the built-in types keep
/// behind a second allocation (a queue's or a lock's waiting lists).
pub const OBJECT_OVERHEAD: usize = 512;

/// The bytes `object` is charged while it lives: its allocation (the
/// struct behind the `Arc`, with the `Arc`'s counts) and
/// [`OBJECT_OVERHEAD`]. Values it stores are charged on their own.
pub fn object_bytes(object: &dyn SharedObject) -> usize {
    mp_proto::value::heap_block(std::mem::size_of_val(object) + 16) + OBJECT_OVERHEAD
}

/// `KeyError` for an id with no live object.
pub fn no_such_object(id: ObjectId) -> RemoteError {
    key_error_msg(format!("no shared object with id '{id}'"))
}

thread_local! {
    /// Objects waiting to be dropped on this thread, while one is being
    /// dropped: `None` when no disposal is running.
    static DISPOSING: RefCell<Option<Vec<Arc<dyn SharedObject>>>> = const { RefCell::new(None) };
}

/// Drops `object`, and every object whose last reference it held, without
/// recursion.
fn dispose(object: Arc<dyn SharedObject>) {
    let first = DISPOSING.with(|d| {
        let mut d = d.borrow_mut();
        match d.as_mut() {
            Some(queue) => {
                queue.push(object);
                None
            }
            None => {
                *d = Some(Vec::new());
                Some(object)
            }
        }
    });
    let Some(first) = first else {
        return;
    };
    drop(first);
    while let Some(next) = DISPOSING.with(|d| d.borrow_mut().as_mut().and_then(Vec::pop)) {
        drop(next);
    }
    DISPOSING.with(|d| *d.borrow_mut() = None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Args;
    use crate::engine::Engine;
    use crate::object::SessionId;
    use crate::registry::Registry;
    use crate::session::Session;
    use mp_proto::message::{Outcome, Request, Target};
    use mp_proto::Value;

    fn call(
        engine: &Arc<Engine>,
        s: &Arc<Session>,
        target: Target,
        method: &str,
        args: Vec<Value>,
    ) -> Outcome {
        let request = Request {
            id: 1,
            target,
            method: method.into(),
            args,
            kwargs: Default::default(),
            thread: 1,
        };
        match engine.call(s, request) {
            crate::object::Reply::Ready(o) => o,
            crate::object::Reply::Pending(_) => panic!("{method} blocked"),
        }
    }

    fn create(engine: &Arc<Engine>, s: &Session, typeid: &str) -> Token {
        engine.create(s, typeid, Args::default()).unwrap().token
    }

    #[test]
    fn a_long_chain_of_nested_lists_is_freed_without_recursion() {
        let engine = Engine::new(Registry::sync_manager());
        let s = Arc::new(Session::new(SessionId(1), "t"));
        let first = create(&engine, &s, "list");
        let mut prev = first.clone();
        // Each list holds the next; only the first is held by the session.
        for _ in 0..100_000 {
            let next = create(&engine, &s, "list");
            call(
                &engine,
                &s,
                Target::Object(prev.id),
                "append",
                vec![next.clone().into()],
            );
            assert!(s.take_ref(next.id));
            engine.table().decref(next.id).unwrap();
            prev = next;
        }
        assert_eq!(engine.table().len(), 100_001);
        assert!(s.take_ref(first.id));
        engine.table().decref(first.id).unwrap();
        assert_eq!(engine.table().len(), 0);
    }

    #[test]
    fn cycles_held_only_by_themselves_are_collected() {
        let engine = Engine::new(Registry::sync_manager());
        let s = Arc::new(Session::new(SessionId(1), "t"));
        let give_up = |t: &Token| {
            assert!(s.take_ref(t.id));
            engine.table().decref(t.id).unwrap();
        };
        // CPython's `b = m.list(); b.append(b); del b`.
        let b = create(&engine, &s, "list");
        call(
            &engine,
            &s,
            Target::Object(b.id),
            "append",
            vec![b.clone().into()],
        );
        // Two dicts holding each other, one of them holding a list that a
        // live dict also holds.
        let (x, y) = (create(&engine, &s, "dict"), create(&engine, &s, "dict"));
        let (shared, keeper) = (create(&engine, &s, "list"), create(&engine, &s, "dict"));
        let set = |d: &Token, k: &str, v: &Token| {
            let args = vec![k.into(), v.clone().into()];
            call(&engine, &s, Target::Object(d.id), "__setitem__", args);
        };
        set(&x, "y", &y);
        set(&y, "x", &x);
        set(&x, "l", &shared);
        set(&keeper, "l", &shared);
        // A cycle still held by the session stays, with what it holds.
        let (p, q) = (create(&engine, &s, "list"), create(&engine, &s, "list"));
        call(
            &engine,
            &s,
            Target::Object(p.id),
            "append",
            vec![q.clone().into()],
        );
        call(
            &engine,
            &s,
            Target::Object(q.id),
            "append",
            vec![p.clone().into()],
        );
        give_up(&q);
        assert_eq!(engine.table().collect_cycles(), 0);
        for t in [&b, &x, &y, &shared] {
            give_up(t);
        }
        assert_eq!(engine.table().len(), 7);
        assert_eq!(engine.table().collect_cycles(), 3);
        let mut left: Vec<ObjectId> = engine.table().snapshot().iter().map(|o| o.id).collect();
        left.sort();
        let mut expected = vec![shared.id, keeper.id, p.id, q.id];
        expected.sort();
        assert_eq!(left, expected);
        // The list the freed dict held lost that reference only.
        assert_eq!(engine.table().refcount(shared.id), Some(1));
        // number_of_objects counts the live objects only.
        give_up(&p);
        let got = call(&engine, &s, Target::Server, "number_of_objects", vec![]);
        assert_eq!(got, Outcome::Return(Value::Int(2)));
    }

    #[test]
    fn ending_a_session_drops_its_references_and_locks() {
        let engine = Engine::new(Registry::sync_manager());
        let owner = Arc::new(Session::new(SessionId(1), "a"));
        let other = Arc::new(Session::new(SessionId(2), "b"));
        let lock = create(&engine, &other, "Lock");
        let d = create(&engine, &owner, "dict");
        let got = call(&engine, &owner, Target::Object(lock.id), "acquire", vec![]);
        assert_eq!(got, Outcome::Return(Value::Bool(true)));
        // A token returned in a value is owned by the caller's session.
        call(
            &engine,
            &other,
            Target::Object(d.id),
            "__setitem__",
            vec!["l".into(), lock.clone().into()],
        );
        call(
            &engine,
            &owner,
            Target::Object(d.id),
            "__getitem__",
            vec!["l".into()],
        );
        assert_eq!(engine.table().refcount(lock.id), Some(3));
        engine.end_session(&owner);
        // The dict died with its only reference, and with it the token it held.
        assert_eq!(engine.table().refcount(d.id), None);
        assert_eq!(engine.table().refcount(lock.id), Some(1));
        let got = call(
            &engine,
            &other,
            Target::Object(lock.id),
            "acquire",
            vec![false.into()],
        );
        assert_eq!(got, Outcome::Return(Value::Bool(true)));
        // decref is refused for references a session does not own.
        let refused = call(
            &engine,
            &owner,
            Target::Server,
            "decref",
            vec![Value::Int(lock.id.0 as i64)],
        );
        assert!(matches!(refused, Outcome::Error(e) if e.kind == mp_proto::ErrorKind::KeyError));
    }

    struct Boom;

    mp_proto::shared_methods! {
        enum BoomMethod {
            Boom = "boom",
            Fine = "fine",
        }
    }

    impl crate::object::SharedObject for Boom {
        fn methods() -> &'static [mp_proto::methods::MethodSpec] {
            BoomMethod::TABLE
        }
        fn call(
            &self,
            _: &crate::object::CallContext<'_>,
            method: &str,
            _: Args,
        ) -> crate::object::Reply {
            if BoomMethod::from_name(method) == Some(BoomMethod::Boom) {
                panic!("an embedder's bug");
            }
            crate::object::Reply::ok(1)
        }
    }

    #[test]
    fn a_panicking_method_fails_only_its_call() {
        let mut registry = Registry::new();
        registry.register("Boom", |_, _| Ok(Boom));
        let engine = Engine::new(registry);
        let s = Arc::new(Session::new(SessionId(1), "t"));
        let b = create(&engine, &s, "Boom");
        let out = call(&engine, &s, Target::Object(b.id), "boom", vec![]);
        assert!(matches!(out, Outcome::Error(e) if e.kind == mp_proto::ErrorKind::RuntimeError));
        let out = call(&engine, &s, Target::Object(b.id), "fine", vec![]);
        assert_eq!(out, Outcome::Return(Value::Int(1)));
    }
}
