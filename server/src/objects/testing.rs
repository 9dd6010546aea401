//! A table and a session for calling objects directly in unit tests.

use std::sync::Arc;

use mp_proto::{RemoteError, Value};

use crate::args::Args;
use crate::object::{CallContext, Reply, Return, SessionId, SharedObject};
use crate::session::Session;
use crate::table::Table;

pub(crate) struct Harness {
    pub table: Arc<Table>,
    pub session: Session,
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            table: Table::new(),
            session: Session::new(SessionId(1), "test"),
        }
    }

    /// A harness whose table has the budget `max_memory`/`max_value_bytes`.
    pub fn with_limits(max_memory: u64, max_value_bytes: u64) -> Self {
        Harness {
            table: Table::with_budget(crate::budget::Budget::new(max_memory, max_value_bytes)),
            session: Session::new(SessionId(1), "test"),
        }
    }

    pub fn ctx(&self) -> CallContext<'_> {
        self.ctx_on(1)
    }

    pub fn ctx_on(&self, thread: u64) -> CallContext<'_> {
        CallContext {
            table: &self.table,
            session: &self.session,
            thread,
            object: None,
        }
    }

    pub fn call(&self, obj: &dyn SharedObject, method: &str, args: Vec<Value>) -> Reply {
        obj.call(&self.ctx(), method, Args::positional(args))
    }

    pub fn result(
        &self,
        obj: &dyn SharedObject,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, RemoteError> {
        match self.call(obj, method, args) {
            Reply::Ready(Ok(Return::Value(v))) => Ok(v.into_value()),
            Reply::Ready(Ok(Return::Object(_))) => Ok(Value::Str("<object>".into())),
            Reply::Ready(Err(e)) => Err(e),
            Reply::Pending(_) => panic!("{method} blocked"),
        }
    }

    pub fn ok(&self, obj: &dyn SharedObject, method: &str, args: Vec<Value>) -> Value {
        self.result(obj, method, args)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    pub fn err(&self, obj: &dyn SharedObject, method: &str, args: Vec<Value>) -> RemoteError {
        match self.result(obj, method, args) {
            Ok(v) => panic!("{method} returned {v:?}"),
            Err(e) => e,
        }
    }
}

/// Awaits a reply, ready or pending.
pub(crate) async fn settle(reply: Reply) -> Result<Value, RemoteError> {
    let r = match reply {
        Reply::Ready(r) => r,
        Reply::Pending(f) => f.await,
    };
    r.map(|r| match r {
        Return::Value(v) => v.into_value(),
        Return::Object(_) => Value::Str("<object>".into()),
    })
}
