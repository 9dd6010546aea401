//! Globals, calls, instantiations and the opcodes that fill containers
//! and objects: where the policy is applied to each use of a global.

use crate::error::UnpicklingError;
use crate::opcodes::{self as op, name};
use crate::policy::{self, Callable, Special};
use crate::value::Global;

use super::super::node::{Id, MakeNode, Node, ObjectNode};
use super::Machine;

impl Machine<'_> {
    pub(super) fn global(&mut self, module: &str, name: &str) -> Result<(), UnpicklingError> {
        let global = policy::python3_name(module, name);
        policy::check_named(&global)?;
        self.push(Node::Global(Box::new(global)))
    }

    /// The global a node is, for an opcode that calls or instantiates it.
    pub(super) fn global_of(&self, code: u8, id: Id) -> Result<Global, UnpicklingError> {
        match self.arena.get(id) {
            Node::Global(g) => Ok((**g).clone()),
            other => Err(UnpicklingError::malformed(format!(
                "{} of a {} object: only a global can be called or instantiated",
                name(code),
                other.type_name()
            ))),
        }
    }

    /// The node for `global(*args)`: an object made by a call, or for
    /// `copyreg`'s reconstructors the instance they make without one.
    pub(super) fn call(&mut self, global: Global, args: Id) -> Result<Node, UnpicklingError> {
        let callable = policy::check_call(&global)?;
        let copyreg = match callable {
            Callable::Special(
                s @ (Special::Reconstructor | Special::NewObj | Special::NewObjEx),
            ) => s,
            _ => {
                let args = self.arena.link(args);
                return Ok(object(global, MakeNode::Call { callable, args }));
            }
        };
        let items = match self.arena.get(args) {
            Node::Tuple(items) => items.clone(),
            other => {
                return Err(UnpicklingError::malformed(format!(
                    "{global} takes a tuple of arguments, not {}",
                    other.type_name()
                )))
            }
        };
        let Some((&class, rest)) = items.split_first() else {
            return Err(UnpicklingError::malformed(format!(
                "{global} needs a class argument"
            )));
        };
        let class = self.global_of(op::REDUCE, class)?;
        policy::check_class(&class)?;
        let make = match (copyreg, rest) {
            (Special::Reconstructor, &[base, base_state]) => {
                let base = self.global_of(op::REDUCE, base)?;
                if !policy::may_be_base(&base) {
                    return Err(UnpicklingError::malformed(format!(
                        "{global}: base {base} is not a built-in type"
                    )));
                }
                MakeNode::Reconstructor {
                    base,
                    base_state: self.arena.link(base_state),
                }
            }
            (Special::NewObj, rest) => {
                let args = self.new_container(Node::Tuple(Vec::new()), rest.to_vec())?;
                MakeNode::NewObj {
                    args: self.arena.link(args),
                }
            }
            (Special::NewObjEx, &[args, kwargs]) => MakeNode::NewObjEx {
                args: self.arena.link(args),
                kwargs: self.arena.link(kwargs),
            },
            _ => {
                return Err(UnpicklingError::malformed(format!(
                    "{global} got {} arguments",
                    items.len()
                )))
            }
        };
        Ok(object(class, make))
    }

    pub(super) fn append(
        &mut self,
        code: u8,
        target: Id,
        items: Vec<Id>,
    ) -> Result<(), UnpicklingError> {
        for &i in &items {
            self.arena.link(i);
        }
        match self.arena.get_mut(target) {
            Some(Node::List(v)) => v.extend(items),
            Some(Node::Object(o)) if o.state.is_none() => o.list_items.extend(items),
            _ => {
                return Err(self.wrong_target(code, target, "a list or an object before its BUILD"))
            }
        }
        Ok(())
    }

    pub(super) fn set_items(
        &mut self,
        code: u8,
        target: Id,
        pairs: Vec<(Id, Id)>,
    ) -> Result<(), UnpicklingError> {
        for &(k, v) in &pairs {
            self.arena.link(k);
            self.arena.link(v);
        }
        match self.arena.get_mut(target) {
            Some(Node::Dict(v)) => v.extend(pairs),
            Some(Node::Object(o)) if o.state.is_none() => o.dict_items.extend(pairs),
            _ => {
                return Err(self.wrong_target(code, target, "a dict or an object before its BUILD"))
            }
        }
        Ok(())
    }

    pub(super) fn wrong_target(&self, code: u8, target: Id, wanted: &str) -> UnpicklingError {
        UnpicklingError::malformed(format!(
            "{} applied to a {}: only {wanted} takes it",
            name(code),
            self.arena.get(target).type_name()
        ))
    }
}

pub(super) fn object(global: Global, make: MakeNode) -> Node {
    Node::Object(Box::new(ObjectNode {
        global,
        make,
        list_items: Vec::new(),
        dict_items: Vec::new(),
        state: None,
    }))
}

pub(super) fn pairs(code: u8, items: Vec<Id>) -> Result<Vec<(Id, Id)>, UnpicklingError> {
    if items.len() % 2 != 0 {
        return Err(UnpicklingError::malformed(format!(
            "odd number of items for {}",
            name(code)
        )));
    }
    Ok(items.chunks(2).map(|kv| (kv[0], kv[1])).collect())
}

pub(super) fn utf8(bytes: &[u8], what: &str) -> Result<String, UnpicklingError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| UnpicklingError::malformed(format!("{what} is not UTF-8")))
}
