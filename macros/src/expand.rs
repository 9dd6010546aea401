//! Writes what a [`SharedImpl`] needs: the block itself, its method
//! declaration (`shared_methods!`), its proxy and its `SharedType`
//! implementation. Every path goes through `::multiprocessing`, so a
//! program needs no other dependency for what the attribute writes.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Ident, LitStr};

use crate::model::{Constructor, Method, Output, Param, Receiver, SharedImpl};

/// Everything the attribute writes for `shared`.
pub fn expand(shared: &SharedImpl) -> TokenStream {
    let item = &shared.item;
    let declaration = declaration(shared);
    let proxy = proxy(shared);
    let async_proxy = async_proxy(shared);
    let shared_type = shared_type(shared);
    quote! {
        #item
        #declaration
        #proxy
        #shared_type
        // Kept only when the SDK has its `asyncio` feature: the macro
        // asks the SDK's features, not those of the crate expanding this.
        ::multiprocessing::__if_asyncio! { #async_proxy }
    }
}

fn methods_enum(shared: &SharedImpl) -> Ident {
    format_ident!("{}Method", shared.name)
}

fn proxy_name(shared: &SharedImpl) -> Ident {
    format_ident!("{}Proxy", shared.name)
}

fn async_proxy_name(shared: &SharedImpl) -> Ident {
    format_ident!("Async{}Proxy", shared.name)
}

/// A method's doc comments, or a line saying what it calls.
fn method_docs(m: &Method) -> TokenStream {
    if m.docs.is_empty() {
        let default_doc = format!("`{}`, called on the shared object.", m.py_name);
        quote!(#[doc = #default_doc])
    } else {
        let docs = &m.docs;
        quote!(#(#docs)*)
    }
}

/// A method's parameters as the proxy takes them.
fn proxy_params(m: &Method) -> Vec<TokenStream> {
    m.params
        .iter()
        .map(|p| {
            let (ident, ty) = (&p.ident, &p.ty);
            quote!(#ident: #ty)
        })
        .collect()
}

/// `add` → `Add`, `_h` → `_H`: the method's variant in the declaration.
fn variant(method: &Method) -> Ident {
    let rust = method.ident.to_string();
    let leading = rust.len() - rust.trim_start_matches('_').len();
    let mut name = "_".repeat(leading);
    for word in rust[leading..].split('_').filter(|w| !w.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(chars.as_str());
        }
    }
    Ident::new(&name, method.ident.span())
}

/// The `shared_methods!` declaration of the type's methods.
fn declaration(shared: &SharedImpl) -> TokenStream {
    let name = methods_enum(shared);
    let doc = format!(
        "The methods of [`{}`], declared once: the server's dispatch, its exposed list and the proxy's calls all take them from here.",
        shared.name
    );
    let variants = shared.methods.iter().map(|m| {
        let variant = variant(m);
        let py = LitStr::new(&m.py_name, m.ident.span());
        let doc = format!("`{}`.", m.py_name);
        // A Rust name without `_` is public, whatever its Python name: a
        // method renamed to a dunder stays exposed.
        let public = !m.ident.to_string().starts_with('_') && m.py_name.starts_with('_');
        let mut flags = Vec::new();
        if let Output::NewObject(u) = &m.output {
            flags.push(quote!(returns(<#u as ::multiprocessing::managers::SharedType>::TYPEID)));
        }
        if m.blocking {
            flags.push(quote!(blocking()));
        }
        if public {
            flags.push(quote!(exposed()));
        }
        let flags = match flags.split_first() {
            None => quote!(),
            Some((first, more)) => quote!(: #first #(.#more)*),
        };
        quote!(#[doc = #doc] #variant = #py #flags)
    });
    quote! {
        ::multiprocessing::managers::shared_methods! {
            #[doc = #doc]
            pub enum #name {
                #(#variants,)*
            }
        }
    }
}

/// The type a proxy's method takes or a server's parameter holds: `&T`
/// stays `&T` for the proxy; the server owns a `T::Owned`.
fn owned(param: &Param) -> TokenStream {
    match &param.borrowed {
        Some(inner) => quote!(<#inner as ::std::borrow::ToOwned>::Owned),
        None => {
            let ty = &param.ty;
            quote!(#ty)
        }
    }
}

fn to_wire(param: &Param) -> TokenStream {
    let ident = &param.ident;
    let reference = if param.borrowed.is_some() {
        quote!(#ident)
    } else {
        quote!(&#ident)
    };
    quote!(::multiprocessing::managers::proxy::to_wire(#reference)?)
}

fn proxy(shared: &SharedImpl) -> TokenStream {
    let name = proxy_name(shared);
    let target = &shared.name;
    let methods_enum = methods_enum(shared);
    let mp = quote!(::multiprocessing::managers);
    let doc =
        format!("A proxy of a shared [`{target}`]: its methods, called on the server's object.");
    let methods = shared.methods.iter().map(|m| {
        let ident = &m.ident;
        let docs = method_docs(m);
        let variant = variant(m);
        let params = proxy_params(m);
        let args = m.params.iter().map(to_wire);
        let args = quote!(::std::vec![#(#args),*]);
        let method = quote!(#methods_enum::#variant);
        let (output, body) = match &m.output {
            Output::Unit => (
                quote!(()),
                quote!(self.base.call(#method, #args).map(::std::mem::drop)),
            ),
            Output::Value(t) => (quote!(#t), quote!(self.base.call_as(#method, #args))),
            Output::Borrowed(t) => (
                quote!(<#t as ::std::borrow::ToOwned>::Owned),
                quote!(self.base.call_as(#method, #args)),
            ),
            Output::NewObject(u) => (
                quote!(<#u as #mp::SharedType>::Proxy),
                quote!(self.base.call_returning(#method.name(), #args)),
            ),
            Output::Result(ok_err) => {
                let (t, e) = &**ok_err;
                return quote! {
                    #docs
                    pub fn #ident(&self, #(#params),*)
                        -> ::std::result::Result<#t, #mp::MethodError<#e>>
                    {
                        let answer: ::std::result::Result<#t, #e> =
                            self.base.call_as(#method, #args)?;
                        answer.map_err(#mp::MethodError::Raised)
                    }
                };
            }
        };
        quote! {
            #docs
            pub fn #ident(&self, #(#params),*)
                -> ::std::result::Result<#output, #mp::ManagerError>
            {
                #body
            }
        }
    });
    let serde = quote!(::multiprocessing::__private::serde);
    let reference_traits = reference_traits(&name);
    quote! {
        #[doc = #doc]
        pub struct #name {
            base: #mp::BaseProxy,
        }

        impl #name {
            /// The untyped reference underneath.
            pub fn base(&self) -> &#mp::BaseProxy {
                &self.base
            }

            #(#methods)*
        }

        #reference_traits

        impl ::std::fmt::Display for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.base.fmt_display(::std::stringify!(#name), f)
            }
        }

        impl ::std::convert::AsRef<#mp::BaseProxy> for #name {
            fn as_ref(&self) -> &#mp::BaseProxy {
                &self.base
            }
        }

        impl #mp::ProxyType for #name {
            fn from_parts(base: #mp::BaseProxy, _exposed: ::std::vec::Vec<::std::string::String>) -> Self {
                #name { base }
            }
        }

        impl #serde::Serialize for #name {
            fn serialize<S: #serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                #serde::Serialize::serialize(&self.base, s)
            }
        }

        impl<'de> #serde::Deserialize<'de> for #name {
            fn deserialize<D: #serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                ::std::result::Result::Ok(#name { base: #serde::Deserialize::deserialize(d)? })
            }
        }
    }
}

/// `Clone` and `Debug` of a proxy struct `name` over a `base` proxy: the
/// blocking and the async proxy have them alike.
fn reference_traits(name: &Ident) -> TokenStream {
    quote! {
        impl ::std::clone::Clone for #name {
            /// Another reference to the same object.
            fn clone(&self) -> Self {
                #name { base: ::std::clone::Clone::clone(&self.base) }
            }
        }

        impl ::std::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.base.fmt_debug(::std::stringify!(#name), f)
            }
        }
    }
}

/// The async proxy: the same methods as `async fn`s over an
/// `AsyncBaseProxy`, and `AsyncSharedType` for the type. Expanded inside
/// `__if_asyncio!`, so it exists only when the SDK has `asyncio`.
fn async_proxy(shared: &SharedImpl) -> TokenStream {
    let name = async_proxy_name(shared);
    let target = &shared.name;
    let methods_enum = methods_enum(shared);
    let mp = quote!(::multiprocessing::managers);
    let base = quote!(#mp::asyncio::AsyncBaseProxy);
    let doc = format!(
        "An async proxy of a shared [`{target}`]: its methods as `async fn`s, called on the server's object (the async counterpart of `{}`).",
        proxy_name(shared)
    );
    let methods = shared.methods.iter().map(|m| {
        let ident = &m.ident;
        let docs = method_docs(m);
        let variant = variant(m);
        let params = proxy_params(m);
        let args = m.params.iter().map(to_wire);
        // The arguments are converted before the first `.await`, as the
        // blocking proxy converts them before its call.
        let args = quote!(let __args = ::std::vec![#(#args),*];);
        let spec = quote!(#methods_enum::#variant.spec());
        let (output, body) = match &m.output {
            Output::Unit => (
                quote!(()),
                quote!(self.base.call_declared(#spec, __args).await.map(::std::mem::drop)),
            ),
            Output::Value(t) => (
                quote!(#t),
                quote!(#mp::proxy::from_wire(self.base.call_declared(#spec, __args).await?)),
            ),
            Output::Borrowed(t) => (
                quote!(<#t as ::std::borrow::ToOwned>::Owned),
                quote!(#mp::proxy::from_wire(self.base.call_declared(#spec, __args).await?)),
            ),
            Output::NewObject(u) => (
                quote!(<#u as #mp::asyncio::AsyncSharedType>::AsyncProxy),
                quote!(self.base.call_returning(#spec, __args).await),
            ),
            Output::Result(ok_err) => {
                let (t, e) = &**ok_err;
                return quote! {
                    #docs
                    pub async fn #ident(&self, #(#params),*)
                        -> ::std::result::Result<#t, #mp::MethodError<#e>>
                    {
                        #args
                        let answer: ::std::result::Result<#t, #e> = #mp::proxy::from_wire(
                            self.base.call_declared(#spec, __args).await?,
                        )?;
                        answer.map_err(#mp::MethodError::Raised)
                    }
                };
            }
        };
        quote! {
            #docs
            pub async fn #ident(&self, #(#params),*)
                -> ::std::result::Result<#output, #mp::ManagerError>
            {
                #args
                #body
            }
        }
    });
    let reference_traits = reference_traits(&name);
    quote! {
        #[doc = #doc]
        pub struct #name {
            base: #base,
        }

        impl #name {
            #(#methods)*
        }

        #reference_traits

        impl #mp::asyncio::AsyncProxyType for #name {
            const TYPEIDS: &'static [&'static str] = &[<#target as #mp::SharedType>::TYPEID];
            fn from_base(base: #base) -> Self {
                #name { base }
            }
            fn base(&self) -> &#base {
                &self.base
            }
        }

        impl #mp::asyncio::AsyncSharedType for #target {
            type AsyncProxy = #name;
        }
    }
}

/// `&["x", "y"]` and how many of them are required (all up to the last
/// that is not an `Option`).
fn signature(params: &[Param]) -> (TokenStream, usize) {
    let names = params
        .iter()
        .map(|p| LitStr::new(&p.ident.to_string(), p.ident.span()));
    let required = params.iter().rposition(|p| !p.option).map_or(0, |i| i + 1);
    (quote!(&[#(#names),*]), required)
}

/// Binds a call to `params`, one `let` per parameter.
fn take_params(params: &[Param]) -> TokenStream {
    let (names, required) = signature(params);
    let lets = params.iter().enumerate().map(|(i, p)| {
        let ident = &p.ident;
        let ty = owned(p);
        quote!(let #ident: #ty = __bound.take(#i)?;)
    });
    quote! {
        #[allow(unused_mut)]
        let mut __bound = __call.bind(#names, #required)?;
        #(#lets)*
    }
}

/// The arguments passed on to the Rust function: borrowed where it
/// borrows.
fn pass(params: &[Param]) -> TokenStream {
    let args = params.iter().map(|p| {
        let ident = &p.ident;
        match p.borrowed {
            Some(_) => quote!(::std::borrow::Borrow::borrow(&#ident)),
            None => quote!(#ident),
        }
    });
    quote!(#(#args),*)
}

fn shared_type(shared: &SharedImpl) -> TokenStream {
    let mp = quote!(::multiprocessing::managers);
    let target = &shared.name;
    let proxy = proxy_name(shared);
    let methods_enum = methods_enum(shared);
    let typeid = shared
        .options
        .typeid
        .clone()
        .unwrap_or_else(|| LitStr::new(&shared.name.to_string(), Span::call_site()));
    let exposed = match &shared.options.exposed {
        Some(names) => quote!(::std::option::Option::Some(&[#(#names),*])),
        None => quote!(::std::option::Option::None),
    };
    let (new_args, new_wire, construct) = constructor(shared.constructor.as_ref());
    let arms = shared.methods.iter().map(|m| {
        let variant = variant(m);
        let ident = &m.ident;
        let take = take_params(&m.params);
        let pass = pass(&m.params);
        let lock = match m.receiver {
            Receiver::Shared => quote!(#mp::shared_type::read(__cell)),
            Receiver::Exclusive => quote!(#mp::shared_type::write(__cell)),
        };
        let call = quote!(__object.#ident(#pass));
        let answer = match &m.output {
            Output::Unit => quote!({ #call; #mp::shared_type::Answer::value(&()) }),
            Output::Borrowed(_) => quote!(#mp::shared_type::Answer::value(#call)),
            Output::NewObject(_) => {
                quote!(::std::result::Result::Ok(#mp::shared_type::Answer::object(#call)))
            }
            Output::Value(_) | Output::Result(..) => {
                quote!(#mp::shared_type::Answer::value(&#call))
            }
        };
        quote! {
            ::std::option::Option::Some(#methods_enum::#variant) => {
                #take
                #[allow(unused_mut)]
                let mut __object = #lock;
                #answer
            }
        }
    });
    let returned = shared.methods.iter().filter_map(|m| match &m.output {
        Output::NewObject(u) => Some(quote!(__registrar.returned::<#u>();)),
        _ => None,
    });
    quote! {
        impl #mp::SharedType for #target {
            const TYPEID: &'static str = #typeid;
            const METHODS: &'static [#mp::methods::MethodSpec] = #methods_enum::TABLE;
            const EXPOSED: ::std::option::Option<&'static [&'static str]> = #exposed;

            type Proxy = #proxy;
            type NewArgs = #new_args;

            fn new_args(
                args: Self::NewArgs,
            ) -> ::std::result::Result<::std::vec::Vec<#mp::PyObject>, #mp::ManagerError> {
                #new_wire
            }

            fn construct(
                __call: #mp::shared_type::Call,
            ) -> ::std::result::Result<Self, #mp::shared_type::RemoteError> {
                #construct
            }

            fn dispatch(
                __cell: &::std::sync::RwLock<Self>,
                __method: &str,
                __call: #mp::shared_type::Call,
            ) -> ::std::result::Result<#mp::shared_type::Answer, #mp::shared_type::RemoteError> {
                match #methods_enum::from_name(__method) {
                    #(#arms)*
                    ::std::option::Option::None => ::std::result::Result::Err(
                        #mp::shared_type::no_such_method(#typeid, __method),
                    ),
                }
            }

            fn register_returned(__registrar: &mut #mp::shared_type::Registrar<'_>) {
                #(#returned)*
                let _ = __registrar;
            }
        }
    }
}

/// `NewArgs`, its wire form, and the server's construction.
fn constructor(constructor: Option<&Constructor>) -> (TokenStream, TokenStream, TokenStream) {
    let mp = quote!(::multiprocessing::managers);
    let Some(c) = constructor else {
        return (
            quote!(()),
            quote!({
                let () = args;
                ::std::result::Result::Ok(::std::vec::Vec::new())
            }),
            quote!({
                __call.bind(&[], 0)?;
                ::std::result::Result::Ok(<Self as ::std::default::Default>::default())
            }),
        );
    };
    let types = c.params.iter().map(owned);
    let idents: Vec<&Ident> = c.params.iter().map(|p| &p.ident).collect();
    let wire = c.params.iter().map(|p| {
        let ident = &p.ident;
        quote!(::multiprocessing::managers::proxy::to_wire(&#ident)?)
    });
    let take = take_params(&c.params);
    let pass = pass(&c.params);
    let ident = &c.ident;
    let build = if c.fallible {
        quote!(Self::#ident(#pass).map_err(#mp::shared_type::constructor_error))
    } else {
        quote!(::std::result::Result::Ok(Self::#ident(#pass)))
    };
    (
        quote!((#(#types,)*)),
        quote!({
            let (#(#idents,)*) = args;
            ::std::result::Result::Ok(::std::vec![#(#wire),*])
        }),
        quote!({
            #take
            #build
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(name: &str) -> Method {
        Method {
            ident: Ident::new(name, Span::call_site()),
            py_name: name.to_owned(),
            receiver: Receiver::Shared,
            params: Vec::new(),
            output: Output::Unit,
            blocking: false,
            docs: Vec::new(),
        }
    }

    #[test]
    fn variants_are_camel_case_and_keep_leading_underscores() {
        assert_eq!(variant(&method("add")).to_string(), "Add");
        assert_eq!(variant(&method("pop_left")).to_string(), "PopLeft");
        assert_eq!(variant(&method("_h")).to_string(), "_H");
    }

    #[test]
    fn trailing_options_are_optional() {
        let param = |name: &str, option| Param {
            ident: Ident::new(name, Span::call_site()),
            ty: syn::parse_quote!(i64),
            borrowed: None,
            option,
        };
        let (_, required) = signature(&[param("a", false), param("b", true)]);
        assert_eq!(required, 1);
        let (_, required) = signature(&[param("a", true), param("b", false)]);
        assert_eq!(required, 2);
        let (_, required) = signature(&[param("a", true)]);
        assert_eq!(required, 0);
    }
}
