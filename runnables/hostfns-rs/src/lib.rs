//! hostfns-rs: calls one host function of Suborbital's ABI per job and answers what it got, so
//! that tests reach every host function from Rust (runnables/hostfns-as does the same from
//! AssemblyScript, with the same commands).
//!
//! The input is a command and its arguments, one per line:
//!
//! | command | arguments | calls | answers |
//! |---|---|---|---|
//! | `log` | level, message | `log_msg` | `logged` |
//! | `get` | field type, key | `request_get_field` | the value |
//! | `set` | field type, key, value | `request_set_field`, then `request_get_field` | the value read back |
//! | `header` | name, value | `resp_set_header` | `header set` |
//! | `cache_set` | key, ttl, value | `cache_set` | `stored` |
//! | `cache_get` | key | `cache_get` | the value |
//! | `secret` | name | `get_secret_value` | the value |
//! | `fetch` | method number, URL, body | `fetch_url` | the response body |
//! | `graphql` | endpoint, query, `name=value`... | `add_ffi_var`, `graphql_query` | the data |
//! | `file` | name | `get_static_file` | the file |
//! | `db` | query type, name, `name=value`... | `add_ffi_var`, `db_exec` | the result |
//! | `error` | code, message | `return_error` | that error |
//!
//! A host call's error answers as error 400 with the host's message.

use suborbital::runnable::{HostErr, RunErr, Runnable};
use suborbital::{cache, db, file, graphql, http, log, req, resp, secrets};

struct HostfnsRs {}

fn failed(err: HostErr) -> RunErr {
    RunErr::new(400, &err.message)
}

fn number(text: &str) -> Result<i32, RunErr> {
    text.trim()
        .parse::<i32>()
        .map_err(|_| RunErr::new(422, &format!("not a number: {}", text)))
}

fn pairs<'a>(lines: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    lines
        .iter()
        .filter_map(|line| {
            let at = line.find('=')?;
            Some((&line[..at], &line[at + 1..]))
        })
        .collect()
}

fn query_type(text: &str) -> Result<db::QueryType, RunErr> {
    match number(text)? {
        0 => Ok(db::QueryType::Insert),
        1 => Ok(db::QueryType::Select),
        2 => Ok(db::QueryType::Update),
        3 => Ok(db::QueryType::Delete),
        other => Err(RunErr::new(422, &format!("no query type {}", other))),
    }
}

fn method(text: &str) -> Result<http::Method, RunErr> {
    Ok(match number(text)? {
        0 => http::Method::Get,
        1 => http::Method::Head,
        2 => http::Method::Options,
        3 => http::Method::Post,
        4 => http::Method::Put,
        5 => http::Method::Patch,
        6 => http::Method::Delete,
        other => return Err(RunErr::new(422, &format!("no method {}", other))),
    })
}

impl Runnable for HostfnsRs {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        let text = String::from_utf8(input).map_err(|_| RunErr::new(422, "input is not UTF-8"))?;
        let lines: Vec<&str> = text.split('\n').collect();
        let arg = |i: usize| -> &str { lines.get(i).copied().unwrap_or("") };
        match arg(0) {
            "log" => {
                match number(arg(1))? {
                    1 => log::error(arg(2)),
                    2 => log::warn(arg(2)),
                    3 => log::info(arg(2)),
                    _ => log::debug(arg(2)),
                }
                Ok(b"logged".to_vec())
            }
            "get" => req::field(number(arg(1))?, arg(2)).map_err(failed),
            "set" => {
                let field_type = number(arg(1))?;
                req::set_field(field_type, arg(2), arg(3)).map_err(failed)?;
                req::field(field_type, arg(2)).map_err(failed)
            }
            "header" => {
                resp::set_header(arg(1), arg(2));
                Ok(b"header set".to_vec())
            }
            "cache_set" => {
                cache::set(arg(1), arg(3).as_bytes(), number(arg(2))?).map_err(failed)?;
                Ok(b"stored".to_vec())
            }
            "cache_get" => cache::get(arg(1)).map_err(failed),
            "secret" => secrets::get(arg(1)).map(String::into_bytes).map_err(failed),
            "fetch" => {
                http::request(method(arg(1))?, arg(2), arg(3).as_bytes(), &[]).map_err(failed)
            }
            "graphql" => graphql::query(arg(1), arg(2), &pairs(&lines[3.min(lines.len())..]))
                .map_err(failed),
            "file" => file::get_static(arg(1)).map_err(failed),
            "db" => db::exec(query_type(arg(1))?, arg(2), &pairs(&lines[3.min(lines.len())..]))
                .map_err(failed),
            "error" => Err(RunErr::new(number(arg(1))?, arg(2))),
            other => Err(RunErr::new(422, &format!("unknown command {:?}", other))),
        }
    }
}

suborbital::use_runnable!(HostfnsRs);
