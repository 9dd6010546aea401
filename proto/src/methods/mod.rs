//! The methods of each shared type, declared once.
//!
//! Python's manager finds a method by name on the real object and keeps
//! `exposed` and `method_to_typeid` beside the registration. Here each
//! type's methods are one declaration ([`shared_methods!`](crate::shared_methods)): its Python
//! name and its flags — may it block, does it return a new shared object
//! (and of which typeid), is it exposed by default. The declaration makes
//! a fieldless enum with one variant per method, so that:
//!
//! * the server dispatches with an exhaustive `match` on the enum (the
//!   compiler checks one handler per declared method, and no handler
//!   without a declaration);
//! * the registry takes the exposed list, `get_methods` and
//!   `method_to_typeid` from the table ([`MethodSpec`]), and the metrics
//!   their labels;
//! * client proxies name a method by its variant (`QueueMethod::Get`), not
//!   by a string literal.
//!
//! The built-in SyncManager types' declarations are in [`builtin`], with
//! the server's own calls ([`builtin::ServerMethod`]); a program's own
//! shared types declare theirs with the same macro.

pub mod builtin;

/// One method of a shared type, as its declaration states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MethodSpec {
    /// Python's name (`"get"`, `"__getitem__"`).
    pub name: &'static str,
    /// The call may wait (a queue's `get`, a lock's `acquire`): the server
    /// answers it as a future, and it is where a cancellation matters.
    pub blocking: bool,
    /// The call answers with a new shared object of this typeid (Python's
    /// `method_to_typeid`), not with a value.
    pub returns: Option<&'static str>,
    /// Exposed unless the registration names its own list: by Python's
    /// rule, every name not starting with `_`, plus those declared
    /// `exposed`.
    pub exposed: bool,
    /// The call may change the object's state: with a data directory,
    /// a successful call of such a method on a persisted object is
    /// written to the log. Every method mutates unless its declaration
    /// says `read_only`, so a method declared without a thought is
    /// logged (costing time) rather than lost (costing data).
    pub mutates: bool,
}

impl MethodSpec {
    /// A method called `name`, not blocking, returning a value, exposed
    /// unless its name starts with `_`.
    pub const fn new(name: &'static str) -> MethodSpec {
        let private = matches!(name.as_bytes().first(), Some(b'_'));
        MethodSpec {
            name,
            blocking: false,
            returns: None,
            exposed: !private,
            mutates: true,
        }
    }

    /// The call may wait.
    pub const fn blocking(mut self) -> MethodSpec {
        self.blocking = true;
        self
    }

    /// The call answers with a new shared object of `typeid`; such a
    /// method is exposed, as Python exposes every `method_to_typeid` name.
    pub const fn returns(mut self, typeid: &'static str) -> MethodSpec {
        self.returns = Some(typeid);
        self.exposed = true;
        self
    }

    /// Exposed by default although its name starts with `_` (a dunder
    /// such as `__getitem__`).
    pub const fn exposed(mut self) -> MethodSpec {
        self.exposed = true;
        self
    }

    /// Served, but not exposed by default: a registration must name it.
    pub const fn hidden(mut self) -> MethodSpec {
        self.exposed = false;
        self
    }

    /// The call never changes the object's state (a read: `__getitem__`,
    /// `qsize`): a data directory's log leaves it out.
    pub const fn read_only(mut self) -> MethodSpec {
        self.mutates = false;
        self
    }
}

/// Declares the methods of a shared type: one variant per method, its
/// Python name, and its flags as [`MethodSpec`] builder calls.
///
/// ```
/// mp_proto::shared_methods! {
///     /// The reference's `MathsClass`.
///     pub enum MathsMethod {
///         /// `add(x, y)`.
///         Add = "add",
///         /// `mul(x, y)`.
///         Mul = "mul",
///         /// Waits for a result.
///         Wait = "wait": blocking,
///         /// A hidden helper a registration may expose.
///         Helper = "_helper",
///         /// An iterator over results, as a new shared object.
///         Iter = "__iter__": returns("Iterator"),
///     }
/// }
///
/// assert_eq!(MathsMethod::from_name("mul"), Some(MathsMethod::Mul));
/// assert_eq!(MathsMethod::Wait.name(), "wait");
/// assert!(MathsMethod::Wait.spec().blocking);
/// let exposed: Vec<_> = MathsMethod::TABLE.iter().filter(|m| m.exposed).map(|m| m.name).collect();
/// assert_eq!(exposed, ["add", "mul", "wait", "__iter__"]);
/// ```
#[macro_export]
macro_rules! shared_methods {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $py:literal
                $( : $flag:ident $( ( $($arg:expr),* ) )? $( . $more:ident $( ( $($marg:expr),* ) )? )* )?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every method, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// What the declaration states about every method, in
            /// declaration order (the order of the exposed list).
            pub const TABLE: &'static [$crate::methods::MethodSpec] = &[
                $(
                    $crate::methods::MethodSpec::new($py)
                    $( .$flag( $($($arg),*)? ) $( .$more( $($($marg),*)? ) )* )?
                ),*
            ];

            /// The method called `name`, if the type has one.
            pub fn from_name(name: &str) -> ::core::option::Option<$name> {
                match name {
                    $( $py => ::core::option::Option::Some($name::$variant), )*
                    _ => ::core::option::Option::None,
                }
            }

            /// Python's name of the method.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $py, )*
                }
            }

            /// What the declaration states about the method.
            pub const fn spec(self) -> $crate::methods::MethodSpec {
                Self::TABLE[self as usize]
            }
        }

        impl ::core::convert::AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.name()
            }
        }

        impl ::core::fmt::Display for $name {
            /// Python's name of the method.
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

#[cfg(test)]
mod tests {

    crate::shared_methods! {
        enum Probe {
            Plain = "plain",
            Dunder = "__len__",
            Shown = "__getitem__": exposed,
            Waits = "get": blocking,
            Hidden = "locked": hidden,
            Makes = "__iter__": returns("Iterator").blocking(),
            Reads = "__len__x": exposed.read_only(),
        }
    }

    #[test]
    fn flags_read_as_declared() {
        let spec = |m: Probe| m.spec();
        assert!(spec(Probe::Plain).exposed && !spec(Probe::Plain).blocking);
        assert!(
            !spec(Probe::Dunder).exposed,
            "a dunder is private by default"
        );
        assert!(spec(Probe::Shown).exposed);
        assert!(spec(Probe::Waits).blocking);
        assert!(!spec(Probe::Hidden).exposed);
        let makes = spec(Probe::Makes);
        assert_eq!(makes.returns, Some("Iterator"));
        assert!(makes.exposed && makes.blocking);
        assert!(makes.mutates, "a method mutates unless declared read_only");
        let reads = spec(Probe::Reads);
        assert!(reads.exposed && !reads.mutates);
    }

    #[test]
    fn names_and_variants_round_trip() {
        for (i, m) in Probe::ALL.iter().enumerate() {
            assert_eq!(Probe::from_name(m.name()), Some(*m));
            assert_eq!(Probe::TABLE[i].name, m.name());
        }
        assert_eq!(Probe::from_name("nope"), None);
        assert_eq!(Probe::from_name("GET"), None, "names are case-sensitive");
    }
}
