//! `#[method_list(KEY)]`, the SDK's own check that its blocking and
//! async proxies keep the same methods: on an `impl` block it keeps the
//! block and adds, under `cfg(test)` of the crate expanding it, an
//! associated const `KEY` listing each `pub` method's name and
//! parameters (without the receiver) as written. A test of the SDK
//! compares the lists of a blocking proxy and its async counterpart, so
//! a method added to one and not the other fails it. Not an API.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{FnArg, Ident, ImplItem, ItemImpl, LitStr, Visibility};

/// The block, and its listing.
pub fn expand(key: &Ident, item: &ItemImpl) -> TokenStream {
    let entries = item.items.iter().filter_map(|i| match i {
        ImplItem::Fn(f) if matches!(f.vis, Visibility::Public(_)) => {
            let name = LitStr::new(&f.sig.ident.to_string(), f.sig.ident.span());
            let params: Vec<String> = f
                .sig
                .inputs
                .iter()
                .filter_map(|input| match input {
                    FnArg::Typed(t) => Some(normalize(&t.to_token_stream())),
                    FnArg::Receiver(_) => None,
                })
                .collect();
            let params = LitStr::new(&params.join(", "), f.sig.ident.span());
            Some(quote!((#name, #params)))
        }
        _ => None,
    });
    let (generics, _, where_clause) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    quote! {
        #item
        #[cfg(test)]
        impl #generics #self_ty #where_clause {
            #[doc(hidden)]
            #[allow(dead_code)]
            pub(crate) const #key: &'static [(&'static str, &'static str)] = &[#(#entries),*];
        }
    }
}

/// Tokens as one string, spaced the same whatever the source's layout.
fn normalize(tokens: &TokenStream) -> String {
    tokens
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
