//! What a `#[shared] impl` block says, read once: the options on the
//! block, each shared method (receiver, parameters, kind of result,
//! Python name, flags) and the constructor. Everything the attribute does
//! not support is a compile error pointing at the offending token.

use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, Expr, ExprArray, ExprLit, FnArg, GenericArgument, Ident, ImplItem,
    ImplItemFn, ItemImpl, Lit, LitStr, Pat, PathArguments, ReceiverKind, Result, ReturnType, Type,
};

/// The options of `#[shared(…)]` on the `impl` block.
#[derive(Default)]
pub struct TypeOptions {
    /// `typeid = "…"`: the registered name (default: the type's name).
    pub typeid: Option<LitStr>,
    /// `exposed = ["f", "_h"]`: the exposed list instead of the default.
    pub exposed: Option<Vec<LitStr>>,
}

impl TypeOptions {
    /// Reads one option.
    pub fn parse(&mut self, meta: ParseNestedMeta<'_>) -> Result<()> {
        if meta.path.is_ident("typeid") {
            self.typeid = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("exposed") {
            let array: ExprArray = meta.value()?.parse()?;
            let names = array
                .elems
                .into_iter()
                .map(|e| match e {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(name),
                        ..
                    }) => Ok(name),
                    other => Err(Error::new(
                        other.span(),
                        "expected a method's name as a string",
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            self.exposed = Some(names);
            Ok(())
        } else {
            Err(meta.error("unknown option: expected `typeid = \"…\"` or `exposed = [\"…\", …]`"))
        }
    }
}

/// A `#[shared]` block, read.
pub struct SharedImpl {
    /// The block as written, minus the attribute's own markers.
    pub item: ItemImpl,
    /// The type's name.
    pub name: Ident,
    /// Its options.
    pub options: TypeOptions,
    /// The shared methods, in declaration order.
    pub methods: Vec<Method>,
    /// The constructor marked `#[shared(new)]`, if any (else `Default`).
    pub constructor: Option<Constructor>,
}

/// A method's receiver.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// `&self`: runs beside other readers.
    Shared,
    /// `&mut self`: runs alone.
    Exclusive,
}

/// One parameter.
pub struct Param {
    /// Its name (Python's keyword).
    pub ident: Ident,
    /// Its type as written.
    pub ty: Type,
    /// `&T`: the server owns a `T::Owned` and lends it.
    pub borrowed: Option<Type>,
    /// An `Option<…>`: may be left out when all after it may be too.
    pub option: bool,
}

/// What a method returns, as the proxy sees it.
pub enum Output {
    /// Nothing (`()`).
    Unit,
    /// A value of this type.
    Value(Type),
    /// A borrow `&T`: the proxy gets `T::Owned`.
    Borrowed(Type),
    /// `Result<T, E>`.
    Result(Box<(Type, Type)>),
    /// `NewObject<U>`: a new shared object of `U`.
    NewObject(Type),
}

/// A shared method.
pub struct Method {
    /// Its Rust name.
    pub ident: Ident,
    /// Python's name (`#[shared(name = "…")]`, or the Rust name).
    pub py_name: String,
    /// `&self` or `&mut self`.
    pub receiver: Receiver,
    /// The parameters after the receiver.
    pub params: Vec<Param>,
    /// The result.
    pub output: Output,
    /// `#[shared(blocking)]`: runs on a thread of its own.
    pub blocking: bool,
    /// Its `///` lines, for the proxy's method.
    pub docs: Vec<Attribute>,
}

/// The constructor: `#[shared(new)] fn new(…) -> Self` (or
/// `Result<Self, E>`).
pub struct Constructor {
    /// Its name.
    pub ident: Ident,
    /// Its parameters.
    pub params: Vec<Param>,
    /// Whether it returns `Result<Self, E>`.
    pub fallible: bool,
}

/// The flags of `#[shared(…)]` on a function.
#[derive(Default)]
struct FnFlags {
    name: Option<LitStr>,
    blocking: bool,
    skip: bool,
    new: bool,
}

impl SharedImpl {
    /// Reads the block, taking the `#[shared(…)]` markers off its
    /// functions.
    pub fn read(mut item: ItemImpl, options: TypeOptions) -> Result<Self> {
        if let Some((path, _)) = &item.trait_ {
            return Err(Error::new(
                path.span(),
                "#[shared] goes on the type's own `impl` block, not a trait's",
            ));
        }
        if !item.generics.params.is_empty() {
            return Err(Error::new(
                item.generics.span(),
                "a shared type cannot be generic: the server builds it by its typeid",
            ));
        }
        let name = match &*item.self_ty {
            Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
                Some(last) if last.arguments.is_empty() => last.ident.clone(),
                _ => return Err(Error::new(p.span(), "expected a type name")),
            },
            other => return Err(Error::new(other.span(), "expected a type name")),
        };
        let mut methods = Vec::new();
        let mut constructor = None;
        for f in item.items.iter_mut().filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        }) {
            let flags = take_flags(&mut f.attrs)?;
            if flags.skip {
                continue;
            }
            if flags.new {
                if constructor.is_some() {
                    return Err(Error::new(f.sig.ident.span(), "a second #[shared(new)]"));
                }
                constructor = Some(read_constructor(f)?);
            } else if f.sig.receiver().is_some() {
                methods.push(read_method(f, flags)?);
            }
        }
        for (i, m) in methods.iter().enumerate() {
            if let Some(first) = methods[..i].iter().find(|f| f.py_name == m.py_name) {
                return Err(Error::new(
                    m.ident.span(),
                    format!(
                        "`{}` and `{}` are both served as `{}`",
                        first.ident, m.ident, m.py_name
                    ),
                ));
            }
        }
        Ok(SharedImpl {
            item,
            name,
            options,
            methods,
            constructor,
        })
    }
}

/// Takes the `#[shared(…)]` attributes off a function, reading them.
fn take_flags(attrs: &mut Vec<Attribute>) -> Result<FnFlags> {
    let mut flags = FnFlags::default();
    let mut error = None;
    attrs.retain(|attr| {
        if !attr.path().is_ident("shared") {
            return true;
        }
        let read = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                flags.name = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("blocking") {
                flags.blocking = true;
            } else if meta.path.is_ident("skip") {
                flags.skip = true;
            } else if meta.path.is_ident("new") {
                flags.new = true;
            } else {
                return Err(meta
                    .error("unknown flag: expected `name = \"…\"`, `blocking`, `skip` or `new`"));
            }
            Ok(())
        });
        if let Err(e) = read {
            error.get_or_insert(e);
        }
        false
    });
    match error {
        Some(e) => Err(e),
        None => Ok(flags),
    }
}

fn read_method(f: &ImplItemFn, flags: FnFlags) -> Result<Method> {
    let sig = &f.sig;
    if sig.asyncness.is_some() || !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.ident.span(),
            "a shared method cannot be async or generic",
        ));
    }
    let receiver = match sig.receiver().map(|r| &r.kind) {
        Some(ReceiverKind::Reference(_, _, None)) => Receiver::Shared,
        Some(ReceiverKind::Reference(_, _, Some(_))) => Receiver::Exclusive,
        _ => {
            return Err(Error::new(
                sig.ident.span(),
                "a shared method takes `&self` or `&mut self` (the server keeps the object)",
            ))
        }
    };
    let params = read_params(sig.inputs.iter().skip(1))?;
    let output = match &sig.output {
        ReturnType::Default => Output::Unit,
        ReturnType::Type(_, ty) => read_output(ty),
    };
    let docs = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Ok(Method {
        ident: sig.ident.clone(),
        py_name: flags
            .name
            .map_or_else(|| sig.ident.to_string(), |n| n.value()),
        receiver,
        params,
        output,
        blocking: flags.blocking,
        docs,
    })
}

fn read_constructor(f: &ImplItemFn) -> Result<Constructor> {
    let sig = &f.sig;
    if sig.receiver().is_some() {
        return Err(Error::new(
            sig.ident.span(),
            "#[shared(new)] marks an associated function returning `Self`",
        ));
    }
    let fallible = match &sig.output {
        ReturnType::Type(_, ty) if is_self(ty) => false,
        ReturnType::Type(_, ty) => match result_args(ty) {
            Some((ok, _)) if is_self(&ok) => true,
            _ => {
                return Err(Error::new(
                    ty.span(),
                    "#[shared(new)] must return `Self` or `Result<Self, E>`",
                ))
            }
        },
        ReturnType::Default => {
            return Err(Error::new(
                sig.ident.span(),
                "#[shared(new)] must return `Self` or `Result<Self, E>`",
            ))
        }
    };
    Ok(Constructor {
        ident: sig.ident.clone(),
        params: read_params(sig.inputs.iter())?,
        fallible,
    })
}

fn read_params<'a>(inputs: impl Iterator<Item = &'a FnArg>) -> Result<Vec<Param>> {
    let mut params = Vec::new();
    for input in inputs {
        let FnArg::Typed(pt) = input else {
            return Err(Error::new(input.span(), "unexpected receiver"));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(Error::new(
                pt.pat.span(),
                "a shared method's parameters are plain names (they are Python's keywords)",
            ));
        };
        let borrowed = match &*pt.ty {
            Type::Reference(r) if r.mutability.is_some() => {
                return Err(Error::new(
                    r.span(),
                    "a `&mut` parameter cannot cross processes: take it by value and return it",
                ))
            }
            Type::Reference(r) => Some((*r.elem).clone()),
            _ => None,
        };
        params.push(Param {
            ident: pi.ident.clone(),
            option: last_segment_is(&pt.ty, "Option"),
            ty: (*pt.ty).clone(),
            borrowed,
        });
    }
    Ok(params)
}

fn read_output(ty: &Type) -> Output {
    if let Type::Tuple(t) = ty {
        if t.elems.is_empty() {
            return Output::Unit;
        }
    }
    if let Type::Reference(r) = ty {
        return Output::Borrowed((*r.elem).clone());
    }
    if let Some((ok, err)) = result_args(ty) {
        return Output::Result(Box::new((ok, err)));
    }
    if let Some([inner]) = generic_args(ty, "NewObject").as_deref() {
        return Output::NewObject(inner.clone());
    }
    Output::Value(ty.clone())
}

fn is_self(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == name))
}

/// The type arguments of `ty` if its last segment is `name<…>`.
fn generic_args(ty: &Type, name: &str) -> Option<Vec<Type>> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
    )
}

/// `T` and `E` of a `Result<T, E>` written with both arguments.
fn result_args(ty: &Type) -> Option<(Type, Type)> {
    match generic_args(ty, "Result")?.as_slice() {
        [ok, err] => Some((ok.clone(), err.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(item: ItemImpl) -> Result<SharedImpl> {
        SharedImpl::read(item, TypeOptions::default())
    }

    fn error(item: ItemImpl) -> String {
        match read(item) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_methods_constructor_and_flags() {
        let shared = read(syn::parse_quote! {
            impl Tally {
                #[shared(new)]
                fn starting_at(n: i64) -> Result<Self, String> { Ok(Tally) }
                fn add(&mut self, by: i64, note: Option<String>) -> i64 { by }
                #[shared(name = "__len__", blocking)]
                fn len(&self) -> &str { "" }
                #[shared(skip)]
                fn helper(&self) {}
                fn associated() {}
            }
        })
        .unwrap();
        assert_eq!(shared.name, "Tally");
        let names: Vec<_> = shared.methods.iter().map(|m| m.py_name.as_str()).collect();
        assert_eq!(names, ["add", "__len__"]);
        assert!(shared.methods[0].receiver == Receiver::Exclusive);
        assert!(shared.methods[0].params[1].option);
        assert!(shared.methods[1].blocking);
        assert!(matches!(shared.methods[1].output, Output::Borrowed(_)));
        let c = shared.constructor.unwrap();
        assert!(c.fallible);
        assert_eq!(c.params.len(), 1);
        let left = shared.item.items.iter().filter_map(|i| match i {
            ImplItem::Fn(f) => Some(
                f.attrs
                    .iter()
                    .filter(|a| a.path().is_ident("shared"))
                    .count(),
            ),
            _ => None,
        });
        assert_eq!(left.sum::<usize>(), 0, "the markers are taken off");
    }

    #[test]
    fn refuses_what_cannot_be_served_with_a_reason() {
        assert!(error(syn::parse_quote!(
            impl<T> Tally<T> {}
        ))
        .contains("cannot be generic"));
        assert!(error(syn::parse_quote!(impl Clone for Tally {})).contains("not a trait's"));
        assert!(error(syn::parse_quote!(impl Tally { fn f(self) {} })).contains("&self"));
        assert!(
            error(syn::parse_quote!(impl Tally { fn f(&self, x: &mut i64) {} }))
                .contains("`&mut` parameter")
        );
        assert!(
            error(syn::parse_quote!(impl Tally { fn f(&self, (a, b): (i64, i64)) {} }))
                .contains("plain names")
        );
        assert!(
            error(syn::parse_quote!(impl Tally { #[shared(fast)] fn f(&self) {} }))
                .contains("unknown flag")
        );
        assert!(error(syn::parse_quote!(impl Tally {
            #[shared(name = "g")]
            fn f(&self) {}
            fn g(&self) {}
        }))
        .contains("both served as `g`"));
        assert!(error(syn::parse_quote!(impl Tally {
            #[shared(new)]
            fn new() -> i64 { 0 }
        }))
        .contains("must return `Self`"));
    }
}
