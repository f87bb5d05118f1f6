//! `uniffi-bindgen`: generates Kotlin, Swift and Python bindings from the
//! built `bindings_ffi` library (library mode), with the uniffi version this
//! crate links, so the generated code and the scaffolding always agree.

fn main() {
    uniffi::uniffi_bindgen_main()
}
