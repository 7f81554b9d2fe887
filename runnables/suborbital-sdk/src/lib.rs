//! A crate-free SDK for Suborbital's runnable ABI, every host function of it.
//!
//! A runnable is a `cdylib` that exports `allocate`, `deallocate` (both from this crate),
//! `run_e` (from [`use_runnable!`]) and its `memory`, and imports from the Wasm module `env`
//! the host functions it uses (the linker keeps only those): `return_result`, `return_error`,
//! `log_msg`, `get_ffi_result`, `add_ffi_var`, `request_get_field`, `request_set_field`,
//! `resp_set_header`, `cache_get`, `cache_set`, `fetch_url`, `graphql_query`,
//! `get_static_file`, `db_exec` and `get_secret_value`.
//! The names, argument order and the negative-size error convention of the FFI result are those
//! of Suborbital's Reactr, so a runnable built with this SDK also runs on Suborbital's hosts.
//!
//! Modules: [`log`], [`req`] (read and change the request), [`resp`] (response headers),
//! [`cache`], [`http`], [`graphql`], [`file`] (static files), [`db`] (the Directive's
//! queries), [`secrets`].
//!
//! ```ignore
//! use suborbital::runnable::*;
//!
//! struct Hello;
//!
//! impl Runnable for Hello {
//!     fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
//!         suborbital::log::info("saying hello");
//!         Ok([b"hello, ".as_slice(), &input].concat())
//!     }
//! }
//!
//! suborbital::use_runnable!(Hello);
//! ```

#![deny(missing_docs)]

/// The host functions this SDK calls; every pointer is an offset into this module's memory.
mod ffi {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn return_result(ptr: *const u8, size: i32, ident: i32);
        pub fn return_error(code: i32, ptr: *const u8, size: i32, ident: i32);
        pub fn log_msg(ptr: *const u8, size: i32, level: i32, ident: i32);
        pub fn request_get_field(
            field_type: i32,
            key_ptr: *const u8,
            key_size: i32,
            ident: i32,
        ) -> i32;
        pub fn request_set_field(
            field_type: i32,
            key_ptr: *const u8,
            key_size: i32,
            val_ptr: *const u8,
            val_size: i32,
            ident: i32,
        ) -> i32;
        pub fn get_ffi_result(ptr: *mut u8, ident: i32) -> i32;
        pub fn add_ffi_var(
            name_ptr: *const u8,
            name_size: i32,
            val_ptr: *const u8,
            val_size: i32,
            ident: i32,
        ) -> i32;
        pub fn resp_set_header(
            key_ptr: *const u8,
            key_size: i32,
            val_ptr: *const u8,
            val_size: i32,
            ident: i32,
        );
        pub fn cache_set(
            key_ptr: *const u8,
            key_size: i32,
            val_ptr: *const u8,
            val_size: i32,
            ttl: i32,
            ident: i32,
        ) -> i32;
        pub fn cache_get(key_ptr: *const u8, key_size: i32, ident: i32) -> i32;
        pub fn fetch_url(
            method: i32,
            url_ptr: *const u8,
            url_size: i32,
            body_ptr: *const u8,
            body_size: i32,
            ident: i32,
        ) -> i32;
        pub fn graphql_query(
            endpoint_ptr: *const u8,
            endpoint_size: i32,
            query_ptr: *const u8,
            query_size: i32,
            ident: i32,
        ) -> i32;
        pub fn get_static_file(name_ptr: *const u8, name_size: i32, ident: i32) -> i32;
        pub fn db_exec(query_type: i32, name_ptr: *const u8, name_size: i32, ident: i32) -> i32;
        pub fn get_secret_value(key_ptr: *const u8, key_size: i32, ident: i32) -> i32;
    }
}

/// The job identifier the host passed to the running `run_e`; every host call carries it back.
/// Wasm32 runnables are single-threaded and the host runs one job per instance at a time.
static mut IDENT: i32 = 0;

fn ident() -> i32 {
    // SAFETY: single-threaded Wasm; written only at the start of `run_e`.
    unsafe { IDENT }
}

/// Reserves `size` bytes for the host to write a job's input into; the host frees them with
/// [`deallocate`] once the job is over.
#[no_mangle]
pub extern "C" fn allocate(size: i32) -> *mut u8 {
    let mut buffer: Vec<u8> = Vec::with_capacity(size.max(0) as usize);
    let ptr = buffer.as_mut_ptr();
    core::mem::forget(buffer);
    ptr
}

/// Frees bytes that [`allocate`] reserved.
///
/// # Safety
/// `ptr` and `size` must be exactly a pointer returned by [`allocate`] and the size it was asked
/// for, freed once.
#[no_mangle]
pub unsafe extern "C" fn deallocate(ptr: *mut u8, size: i32) {
    if !ptr.is_null() {
        drop(Vec::from_raw_parts(ptr, 0, size.max(0) as usize));
    }
}

/// Writing runnables: the [`Runnable`](runnable::Runnable) trait and its error type.
pub mod runnable {
    /// An error a runnable returns: the host answers the job with `code` and `message`
    /// (Stratos maps `code` to the HTTP status, as Suborbital's Atmo does).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RunErr {
        /// Status code, conventionally an HTTP status such as 400 or 500.
        pub code: i32,
        /// What went wrong, for the caller.
        pub message: String,
    }

    impl RunErr {
        /// A new error with a code and a message.
        pub fn new(code: i32, message: &str) -> RunErr {
            RunErr {
                code,
                message: String::from(message),
            }
        }
    }

    /// An error the host returned from a host call.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HostErr {
        /// The host's description of the failure.
        pub message: String,
    }

    /// A function that the host runs once per job.
    pub trait Runnable {
        /// Turns one job's input into its output, or an error.
        fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr>;
    }
}

use runnable::{HostErr, Runnable};

/// Runs one job; [`use_runnable!`] exports this as `run_e`.
#[doc(hidden)]
pub fn run_job(runnable: &dyn Runnable, ptr: *const u8, size: i32, ident: i32) {
    // SAFETY: single-threaded Wasm; see IDENT.
    unsafe { IDENT = ident };
    let input = if ptr.is_null() || size <= 0 {
        Vec::new()
    } else {
        // SAFETY: the host wrote `size` bytes at `ptr`, a buffer it got from `allocate`.
        unsafe { core::slice::from_raw_parts(ptr, size as usize) }.to_vec()
    };
    match runnable.run(input) {
        // SAFETY: the host copies the bytes out before it returns.
        Ok(output) => unsafe { ffi::return_result(output.as_ptr(), output.len() as i32, ident) },
        Err(err) => unsafe {
            ffi::return_error(
                err.code,
                err.message.as_ptr(),
                err.message.len() as i32,
                ident,
            )
        },
    }
}

/// Exports `run_e` for a type that implements [`Runnable`](runnable::Runnable) and has a
/// field-less constructor `Type {}`.
#[macro_export]
macro_rules! use_runnable {
    ($runnable:ident) => {
        /// The Suborbital ABI entry point: runs one job.
        #[no_mangle]
        pub extern "C" fn run_e(ptr: *const u8, size: i32, ident: i32) {
            $crate::run_job(&$runnable {}, ptr, size, ident)
        }
    };
}

/// Logging through the host's `log_msg` (levels as in Suborbital: 1 error … 4 debug).
pub mod log {
    fn emit(message: &str, level: i32) {
        // SAFETY: the host copies the bytes before it returns.
        unsafe {
            super::ffi::log_msg(
                message.as_ptr(),
                message.len() as i32,
                level,
                super::ident(),
            )
        }
    }

    /// Logs at level 1, error.
    pub fn error(message: &str) {
        emit(message, 1)
    }

    /// Logs at level 2, warn.
    pub fn warn(message: &str) {
        emit(message, 2)
    }

    /// Logs at level 3, info.
    pub fn info(message: &str) {
        emit(message, 3)
    }

    /// Logs at level 4, debug.
    pub fn debug(message: &str) {
        emit(message, 4)
    }
}

/// The request that triggered the job, through the host's `request_get_field`.
/// A key the request lacks reads as empty.
pub mod req {
    use super::runnable::HostErr;

    const FIELD_META: i32 = 0;
    const FIELD_BODY: i32 = 1;
    const FIELD_HEADER: i32 = 2;
    const FIELD_PARAMS: i32 = 3;
    const FIELD_STATE: i32 = 4;
    const FIELD_QUERY: i32 = 5;

    /// Reads one field of the request: `field_type` as in Suborbital (0 meta, 1 body, 2 header,
    /// 3 URL param, 4 state, 5 query param).
    pub fn field(field_type: i32, key: &str) -> Result<Vec<u8>, HostErr> {
        // SAFETY: the host copies the key before it returns.
        let size = unsafe {
            super::ffi::request_get_field(
                field_type,
                key.as_ptr(),
                key.len() as i32,
                super::ident(),
            )
        };
        super::ffi_result(size)
    }

    fn text(field_type: i32, key: &str) -> String {
        field(field_type, key)
            .map(super::to_string)
            .unwrap_or_default()
    }

    /// The HTTP method, such as `POST`.
    pub fn method() -> String {
        text(FIELD_META, "method")
    }

    /// The request URL.
    pub fn url() -> String {
        text(FIELD_META, "url")
    }

    /// The request's identifier.
    pub fn id() -> String {
        text(FIELD_META, "id")
    }

    /// The raw request body.
    pub fn body_raw() -> Vec<u8> {
        field(FIELD_META, "body").unwrap_or_default()
    }

    /// A string field of a JSON object body.
    pub fn body_field(key: &str) -> String {
        text(FIELD_BODY, key)
    }

    /// A request header (names are case-insensitive).
    pub fn header(key: &str) -> String {
        text(FIELD_HEADER, key)
    }

    /// A URL parameter of the route, such as `id` in `/users/:id`.
    pub fn url_param(key: &str) -> String {
        text(FIELD_PARAMS, key)
    }

    /// A value that an earlier step of the handler stored in the request state.
    pub fn state(key: &str) -> String {
        text(FIELD_STATE, key)
    }

    /// A state value as bytes.
    pub fn state_raw(key: &str) -> Vec<u8> {
        field(FIELD_STATE, key).unwrap_or_default()
    }

    /// A query parameter of the URL.
    pub fn query_param(key: &str) -> String {
        text(FIELD_QUERY, key)
    }

    /// Changes one field of the job's request (types as for [`field`]; query parameters cannot
    /// be set): later reads in this job see the new value, nothing else does.
    pub fn set_field(field_type: i32, key: &str, value: &str) -> Result<(), HostErr> {
        // SAFETY: the host copies the key and value before it returns.
        let size = unsafe {
            super::ffi::request_set_field(
                field_type,
                key.as_ptr(),
                key.len() as i32,
                value.as_ptr(),
                value.len() as i32,
                super::ident(),
            )
        };
        super::ffi_result(size).map(|_| ())
    }

    /// Replaces the HTTP method the job sees.
    pub fn set_method(value: &str) -> Result<(), HostErr> {
        set_field(FIELD_META, "method", value)
    }

    /// Replaces the URL the job sees.
    pub fn set_url(value: &str) -> Result<(), HostErr> {
        set_field(FIELD_META, "url", value)
    }

    /// Replaces the body the job sees.
    pub fn set_body(value: &str) -> Result<(), HostErr> {
        set_field(FIELD_META, "body", value)
    }

    /// Sets a string field of the JSON object body.
    pub fn set_body_field(key: &str, value: &str) -> Result<(), HostErr> {
        set_field(FIELD_BODY, key, value)
    }

    /// Sets a request header.
    pub fn set_header(key: &str, value: &str) -> Result<(), HostErr> {
        set_field(FIELD_HEADER, key, value)
    }

    /// Sets a URL parameter.
    pub fn set_url_param(key: &str, value: &str) -> Result<(), HostErr> {
        set_field(FIELD_PARAMS, key, value)
    }

    /// Sets a value of the request state.
    pub fn set_state(key: &str, value: &str) -> Result<(), HostErr> {
        set_field(FIELD_STATE, key, value)
    }
}

/// Headers of the response, through the host's `resp_set_header`.
pub mod resp {
    /// Sets a header of the job's response (the last value of a name wins).
    pub fn set_header(key: &str, value: &str) {
        // SAFETY: the host copies the bytes before it returns.
        unsafe {
            super::ffi::resp_set_header(
                key.as_ptr(),
                key.len() as i32,
                value.as_ptr(),
                value.len() as i32,
                super::ident(),
            )
        }
    }
}

/// The host's key-value cache, shared by every job (`cache_set` / `cache_get`).
pub mod cache {
    use super::runnable::HostErr;

    /// The value under `key`; an error if there is none.
    pub fn get(key: &str) -> Result<Vec<u8>, HostErr> {
        // SAFETY: the host copies the key before it returns.
        let size = unsafe { super::ffi::cache_get(key.as_ptr(), key.len() as i32, super::ident()) };
        super::ffi_result(size)
    }

    /// Stores `value` under `key` for `ttl_seconds` (0: no expiry).
    pub fn set(key: &str, value: &[u8], ttl_seconds: i32) -> Result<(), HostErr> {
        // SAFETY: the host copies the bytes before it returns.
        let code = unsafe {
            super::ffi::cache_set(
                key.as_ptr(),
                key.len() as i32,
                value.as_ptr(),
                value.len() as i32,
                ttl_seconds,
                super::ident(),
            )
        };
        if code < 0 {
            return Err(HostErr {
                message: String::from("the host did not store the value"),
            });
        }
        Ok(())
    }
}

/// HTTP requests through the host's `fetch_url` (only to hosts the host allows).
pub mod http {
    use super::runnable::HostErr;

    /// HTTP methods, numbered as in Suborbital's ABI.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Method {
        /// GET (0)
        Get = 0,
        /// HEAD (1)
        Head = 1,
        /// OPTIONS (2)
        Options = 2,
        /// POST (3)
        Post = 3,
        /// PUT (4)
        Put = 4,
        /// PATCH (5)
        Patch = 5,
        /// DELETE (6)
        Delete = 6,
    }

    /// Sends a request; `headers` ride in the URL as `url::Name:Value` (the ABI's way). The
    /// response body, or an error (a non-2xx response is `"<status>: <body>"`).
    pub fn request(
        method: Method,
        url: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Vec<u8>, HostErr> {
        let mut target = String::from(url);
        for (name, value) in headers {
            target.push_str("::");
            target.push_str(name);
            target.push(':');
            target.push_str(value);
        }
        // SAFETY: the host copies the bytes before it returns.
        let size = unsafe {
            super::ffi::fetch_url(
                method as i32,
                target.as_ptr(),
                target.len() as i32,
                body.as_ptr(),
                body.len() as i32,
                super::ident(),
            )
        };
        super::ffi_result(size)
    }

    /// A GET request.
    pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, HostErr> {
        request(Method::Get, url, &[], headers)
    }

    /// A POST request with a body.
    pub fn post(url: &str, body: &[u8], headers: &[(&str, &str)]) -> Result<Vec<u8>, HostErr> {
        request(Method::Post, url, body, headers)
    }
}

/// Adds the variables of the next `graphql_query` or `db_exec`, in order.
fn add_vars(variables: &[(&str, &str)]) -> Result<(), runnable::HostErr> {
    for (name, value) in variables {
        // SAFETY: the host copies the bytes before it returns.
        let code = unsafe {
            ffi::add_ffi_var(
                name.as_ptr(),
                name.len() as i32,
                value.as_ptr(),
                value.len() as i32,
                ident(),
            )
        };
        if code < 0 {
            return Err(runnable::HostErr {
                message: String::from("the host refused a query variable"),
            });
        }
    }
    Ok(())
}

/// GraphQL queries through the host's `graphql_query` (only to hosts the host allows).
pub mod graphql {
    use super::runnable::HostErr;

    /// Runs `query` at `endpoint` with `variables`; the response's `data` as JSON, or an error
    /// (GraphQL errors included).
    pub fn query(endpoint: &str, query: &str, variables: &[(&str, &str)]) -> Result<Vec<u8>, HostErr> {
        super::add_vars(variables)?;
        // SAFETY: the host copies the bytes before it returns.
        let size = unsafe {
            super::ffi::graphql_query(
                endpoint.as_ptr(),
                endpoint.len() as i32,
                query.as_ptr(),
                query.len() as i32,
                super::ident(),
            )
        };
        super::ffi_result(size)
    }
}

/// Static files the host serves the runnable (`get_static_file`).
pub mod file {
    use super::runnable::HostErr;

    /// The bytes of static file `name` (a relative path).
    pub fn get_static(name: &str) -> Result<Vec<u8>, HostErr> {
        // SAFETY: the host copies the name before it returns.
        let size =
            unsafe { super::ffi::get_static_file(name.as_ptr(), name.len() as i32, super::ident()) };
        super::ffi_result(size)
    }
}

/// The queries a Directive declares, run by the host's `db_exec` with positional variables.
pub mod db {
    use super::runnable::HostErr;

    /// Query types of the ABI.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum QueryType {
        /// An insert (0).
        Insert = 0,
        /// A select (1).
        Select = 1,
        /// An update (2).
        Update = 2,
        /// A delete (3).
        Delete = 3,
    }

    /// Runs query `name` with `variables` in order; the result as JSON.
    pub fn exec(
        query_type: QueryType,
        name: &str,
        variables: &[(&str, &str)],
    ) -> Result<Vec<u8>, HostErr> {
        super::add_vars(variables)?;
        // SAFETY: the host copies the name before it returns.
        let size = unsafe {
            super::ffi::db_exec(query_type as i32, name.as_ptr(), name.len() as i32, super::ident())
        };
        super::ffi_result(size)
    }

    /// Runs a select query.
    pub fn select(name: &str, variables: &[(&str, &str)]) -> Result<Vec<u8>, HostErr> {
        exec(QueryType::Select, name, variables)
    }

    /// Runs an insert query.
    pub fn insert(name: &str, variables: &[(&str, &str)]) -> Result<Vec<u8>, HostErr> {
        exec(QueryType::Insert, name, variables)
    }
}

/// Secrets the host allows this runnable to read (`get_secret_value`).
pub mod secrets {
    use super::runnable::HostErr;

    /// The value of secret `name`.
    pub fn get(name: &str) -> Result<String, HostErr> {
        // SAFETY: the host copies the name before it returns.
        let size = unsafe {
            super::ffi::get_secret_value(name.as_ptr(), name.len() as i32, super::ident())
        };
        super::ffi_result(size).map(super::to_string)
    }
}

/// Collects the pending result of the host call that returned `size`: a non-negative size is
/// the length of a value, a negative one the negated length of an error message, -1 an error
/// without a message (Reactr's convention).
fn ffi_result(size: i32) -> Result<Vec<u8>, HostErr> {
    if size == -1 {
        return Err(HostErr {
            message: String::from("unknown error returned from host"),
        });
    }
    let mut data = vec![0u8; size.unsigned_abs() as usize];
    // SAFETY: `data` has room for the whole pending result.
    let code = unsafe { ffi::get_ffi_result(data.as_mut_ptr(), ident()) };
    if code != 0 {
        return Err(HostErr {
            message: String::from("unknown error returned from host"),
        });
    }
    if size < 0 {
        return Err(HostErr {
            message: to_string(data),
        });
    }
    Ok(data)
}

fn to_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}
