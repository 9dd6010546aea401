//! The typeid registry: which types a server hosts and how.
//!
//! Python's `BaseManager.register(typeid, callable, proxytype, exposed,
//! method_to_typeid, create_method)`, minus the client-side proxytype. Each
//! [`TypeSpec`] names a constructor (what `create(typeid, …)` runs), the
//! exposed methods, and which methods return new shared objects of which
//! typeid. [`Registry::sync_manager`] is SyncManager's built-in set.
//!
//! A type's methods, and which of them are exposed by default, block, or
//! return new shared objects, come from its one declaration
//! ([`mp_proto::methods`], through [`SharedObject::methods`]). The exposed
//! rule is Python's: with no explicit list, every method whose name does
//! not start with `_` is exposed, plus those the declaration marks
//! exposed (dunders such as `__getitem__`); an explicit list replaces
//! that; methods in `method_to_typeid` are exposed as well.

use std::collections::HashSet;
use std::sync::Arc;

use indexmap::IndexMap;
use mp_proto::methods::MethodSpec;
use mp_proto::RemoteError;

use crate::args::Args;
use crate::object::{CallContext, SharedObject};
use crate::persist::{Durable, DurableHooks};

/// Makes a new object from `create`'s arguments.
pub type Constructor =
    Arc<dyn Fn(&CallContext<'_>, Args) -> Result<Arc<dyn SharedObject>, RemoteError> + Send + Sync>;

/// How one typeid is served.
pub struct TypeSpec {
    /// The name clients create it by (`"dict"`, `"Queue"`).
    pub typeid: String,
    /// What `create` runs; `None` for types only returned by methods
    /// (`Iterator`), which `create` refuses.
    pub constructor: Option<Constructor>,
    /// Methods a client may call, in order.
    pub exposed: Vec<String>,
    /// The same, for the per-call check.
    exposed_set: HashSet<String>,
    /// Methods whose result becomes a new shared object, and its typeid.
    pub method_to_typeid: IndexMap<String, String>,
    /// Whether a manager client should offer a creation method for it.
    pub create_method: bool,
    /// Methods declared `read_only`: a data directory's log leaves them
    /// out (every other method is taken to change the object).
    read_only: HashSet<&'static str>,
    /// How its objects persist, for a type registered with
    /// [`Registry::register_durable`].
    pub(crate) durable: Option<DurableHooks>,
}

impl TypeSpec {
    /// Whether clients may call `method`.
    pub fn is_exposed(&self, method: &str) -> bool {
        self.exposed_set.contains(method)
    }

    /// The typeid a call to `method` returns, if it returns a new object.
    pub fn returns_typeid(&self, method: &str) -> Option<&str> {
        self.method_to_typeid.get(method).map(String::as_str)
    }

    /// Whether `method` may change an object's state (its declaration
    /// does not mark it `read_only`).
    pub fn mutates(&self, method: &str) -> bool {
        !self.read_only.contains(method)
    }

    /// Whether objects of this type persist in a data directory
    /// ([`Registry::register_durable`]).
    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }
}

/// A registration in progress, for the optional settings.
pub struct Registration<'r> {
    entry: &'r mut Pending,
}

/// A registration before the registry is frozen.
struct Pending {
    constructor: Option<Constructor>,
    methods: &'static [MethodSpec],
    exposed: Option<Vec<String>>,
    method_to_typeid: IndexMap<String, String>,
    create_method: bool,
    durable: Option<DurableHooks>,
}

impl Registration<'_> {
    /// Exposes exactly `names` (Python's `exposed=`), instead of the
    /// public methods.
    pub fn exposed<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entry.exposed = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Declares that `method` returns a new shared object of `typeid`
    /// (Python's `method_to_typeid`), beyond what the type's declaration
    /// says.
    pub fn method_to_typeid(self, method: &str, typeid: &str) -> Self {
        self.entry
            .method_to_typeid
            .insert(method.to_owned(), typeid.to_owned());
        self
    }

    /// Whether a manager client should offer a creation method (Python's
    /// `create_method`, default `true`).
    pub fn create_method(self, yes: bool) -> Self {
        self.entry.create_method = yes;
        self
    }
}

/// Every typeid a server hosts.
#[derive(Default)]
pub struct Registry {
    types: IndexMap<String, Pending>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// SyncManager's built-in types: `dict`, `list`, `Queue`,
    /// `JoinableQueue`, `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`,
    /// `Condition`, `Event`, `Barrier`, `Namespace`, `Value`, `Array` and
    /// `Iterator`.
    pub fn sync_manager() -> Self {
        let mut registry = Registry::new();
        crate::objects::register_builtins(&mut registry);
        registry
    }

    /// Registers `typeid`, created by `constructor`; a typeid registered
    /// again replaces the earlier one.
    pub fn register<T, F>(&mut self, typeid: &str, constructor: F) -> Registration<'_>
    where
        T: SharedObject,
        F: Fn(&CallContext<'_>, Args) -> Result<T, RemoteError> + Send + Sync + 'static,
    {
        let constructor: Constructor = Arc::new(move |ctx, args| {
            constructor(ctx, args).map(|o| Arc::new(o) as Arc<dyn SharedObject>)
        });
        self.insert::<T>(typeid, Some(constructor))
    }

    /// Registers `typeid` like [`register`](Self::register), for a type
    /// whose objects survive a restart when the server has a data
    /// directory (see [`crate::persist`]).
    pub fn register_durable<T, F>(&mut self, typeid: &str, constructor: F) -> Registration<'_>
    where
        T: Durable,
        F: Fn(&CallContext<'_>, Args) -> Result<T, RemoteError> + Send + Sync + 'static,
    {
        let registration = self.register(typeid, constructor);
        registration.entry.durable = Some(DurableHooks::of::<T>());
        registration
    }

    /// Registers `typeid` for objects that only methods return (through
    /// `method_to_typeid`); `create` refuses it. Python's
    /// `register(typeid, create_method=False)` with no callable.
    pub fn register_returned<T: SharedObject>(&mut self, typeid: &str) -> Registration<'_> {
        self.insert::<T>(typeid, None).create_method(false)
    }

    fn insert<T: SharedObject>(
        &mut self,
        typeid: &str,
        constructor: Option<Constructor>,
    ) -> Registration<'_> {
        let methods = T::methods();
        let pending = Pending {
            constructor,
            methods,
            exposed: None,
            method_to_typeid: methods
                .iter()
                .filter_map(|m| Some((m.name.to_owned(), m.returns?.to_owned())))
                .collect(),
            create_method: true,
            durable: None,
        };
        let slot = match self.types.entry(typeid.to_owned()) {
            indexmap::map::Entry::Occupied(mut o) => {
                o.insert(pending);
                o.into_mut()
            }
            indexmap::map::Entry::Vacant(v) => v.insert(pending),
        };
        Registration { entry: slot }
    }

    /// The registered typeids, in registration order.
    pub fn typeids(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Fixes every exposed list; the engine serves from the result.
    pub(crate) fn freeze(self) -> IndexMap<String, Arc<TypeSpec>> {
        self.types
            .into_iter()
            .map(|(typeid, p)| {
                let mut exposed: Vec<String> = match p.exposed {
                    Some(list) => list,
                    None => p
                        .methods
                        .iter()
                        .filter(|m| m.exposed)
                        .map(|m| m.name.to_owned())
                        .collect(),
                };
                for method in p.method_to_typeid.keys() {
                    if !exposed.contains(method) {
                        exposed.push(method.clone());
                    }
                }
                let spec = TypeSpec {
                    typeid: typeid.clone(),
                    constructor: p.constructor,
                    exposed_set: exposed.iter().cloned().collect(),
                    exposed,
                    method_to_typeid: p.method_to_typeid,
                    create_method: p.create_method,
                    read_only: p
                        .methods
                        .iter()
                        .filter(|m| !m.mutates)
                        .map(|m| m.name)
                        .collect(),
                    durable: p.durable,
                };
                (typeid, Arc::new(spec))
            })
            .collect()
    }
}
