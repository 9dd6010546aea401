//! The `#[shared]` attribute of the `multiprocessing` crate (re-exported
//! as `multiprocessing::managers::shared`, which documents it in full):
//! on an `impl` block, it makes the type a shared type a manager serves,
//! with a typed proxy of the same methods.
//!
//! * `model` reads the `impl` block into what the expansion needs: the
//!   type's options, its methods with their receivers, parameters and
//!   kinds of result, its constructor.
//! * `expand` writes the method declaration, the proxy and the
//!   `SharedType` implementation, naming the SDK by its path
//!   `::multiprocessing`.

use proc_macro::TokenStream;

mod expand;
mod listing;
mod model;

/// Makes the type of an `impl` block a shared type a manager serves, with
/// a typed proxy: see `multiprocessing::managers::shared_type`.
#[proc_macro_attribute]
pub fn shared(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemImpl);
    let mut options = model::TypeOptions::default();
    let parser = syn::meta::parser(|meta| options.parse(meta));
    syn::parse_macro_input!(args with parser);
    match model::SharedImpl::read(item, options) {
        Ok(shared) => expand::expand(&shared).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Lists an `impl` block's public methods for the SDK's own test that
/// its blocking and async proxies match (see `listing`). Not an API.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn method_list(args: TokenStream, item: TokenStream) -> TokenStream {
    let key = syn::parse_macro_input!(args as syn::Ident);
    let item = syn::parse_macro_input!(item as syn::ItemImpl);
    listing::expand(&key, &item).into()
}
