//! Writing the objects managers exchange: tokens, proxies, exceptions
//! and inert instances, each checked against the policy first.

use crate::error::PicklingError;
use crate::opcodes as op;
use crate::policy;
use crate::value::{Address, Global, Instance, Make, Proxy, PyException, Token};

use super::Writer;

impl Writer<'_> {
    pub(super) fn token(&mut self, t: &Token) -> Result<(), PicklingError> {
        self.global(policy::MANAGERS, "Token")?;
        self.op(op::EMPTY_TUPLE);
        self.op(op::NEWOBJ);
        self.str(&t.typeid)?;
        match &t.address {
            Address::Inet { host, port } => {
                self.str(host)?;
                self.int(i64::from(*port));
                self.op(op::TUPLE2);
            }
            Address::Path(path) => self.str(path)?,
        }
        self.str(&t.id)?;
        self.op(op::TUPLE3);
        self.op(op::BUILD);
        Ok(())
    }

    #[inline(never)]
    pub(super) fn proxy(&mut self, p: &Proxy, depth: usize) -> Result<(), PicklingError> {
        self.global(policy::MANAGERS, "RebuildProxy")?;
        self.op(op::MARK);
        self.global(policy::MANAGERS, p.func.name())?;
        self.token(&p.token)?;
        self.str(&p.serializer)?;
        self.keywords(&p.kwds, depth)?;
        self.op(op::TUPLE);
        self.op(op::REDUCE);
        Ok(())
    }

    #[inline(never)]
    pub(super) fn exception(&mut self, e: &PyException, depth: usize) -> Result<(), PicklingError> {
        check_exception(&e.class)?;
        self.global_of(&e.class)?;
        self.tuple(&e.args, depth)?;
        self.op(op::REDUCE);
        if let Some(state) = &e.state {
            self.save(state, depth)?;
            self.op(op::BUILD);
        }
        Ok(())
    }

    #[inline(never)]
    pub(super) fn instance(&mut self, i: &Instance, depth: usize) -> Result<(), PicklingError> {
        check_instance(i)?;
        let g = &i.global;
        match &i.make {
            Make::Call(args) => {
                self.global_of(g)?;
                self.tuple(args, depth)?;
                self.op(op::REDUCE);
            }
            Make::NewObj(args) => {
                self.global_of(g)?;
                self.tuple(args, depth)?;
                self.op(op::NEWOBJ);
            }
            Make::NewObjEx { args, kwargs } if self.proto >= 4 => {
                self.global_of(g)?;
                self.tuple(args, depth)?;
                self.keywords(kwargs, depth)?;
                self.op(op::NEWOBJ_EX);
            }
            Make::NewObjEx { args, kwargs } => {
                // CPython writes functools.partial here, which no data-only
                // reader accepts; copyreg's helper does the same in every
                // protocol.
                self.global("copyreg", "__newobj_ex__")?;
                self.global_of(g)?;
                self.tuple(args, depth)?;
                self.keywords(kwargs, depth)?;
                self.op(op::TUPLE3);
                self.op(op::REDUCE);
            }
            Make::Reconstructor { base, base_state } => {
                self.global("copyreg", "_reconstructor")?;
                self.global_of(g)?;
                self.global_of(base)?;
                self.save(base_state, depth)?;
                self.op(op::TUPLE3);
                self.op(op::REDUCE);
            }
        }
        self.appends(&i.list_items, depth)?;
        self.setitems(&i.dict_items, depth)?;
        if let Some(state) = &i.state {
            self.save(state, depth)?;
            self.op(op::BUILD);
        }
        Ok(())
    }
}

/// Checks an exception's class: an allow-listed one.
#[inline(never)]
fn check_exception(class: &Global) -> Result<(), PicklingError> {
    if policy::is_exception_class(class) {
        return Ok(());
    }
    policy::check_call(class)?;
    Err(not_canonical(
        class,
        "is not an allow-listed exception class",
    ))
}

/// Checks an instance's globals for how it is made.
#[inline(never)]
fn check_instance(i: &Instance) -> Result<(), PicklingError> {
    let g = &i.global;
    match &i.make {
        Make::Call(_) => {
            if policy::is_data_callable(g) {
                return Ok(());
            }
            policy::check_call(g)?;
            Err(not_canonical(g, "has a Value variant of its own"))
        }
        make => {
            instance_class(g)?;
            match make {
                Make::Reconstructor { base, .. } if !policy::may_be_base(base) => {
                    Err(not_canonical(base, "is not a built-in base type"))
                }
                _ => Ok(()),
            }
        }
    }
}

/// Checks the class of an instance made without a call.
fn instance_class(g: &Global) -> Result<(), PicklingError> {
    if policy::is_token(g) {
        return Err(not_canonical(g, "is written as a Value::Token"));
    }
    Ok(policy::check_class(g)?)
}

fn not_canonical(g: &Global, why: &str) -> PicklingError {
    PicklingError::NotCanonical(format!("global {g} {why}"))
}
