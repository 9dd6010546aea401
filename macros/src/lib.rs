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
