//! The config loader on arbitrary text: it answers a config or one error naming the key,
//! never a panic. (A file may name other files, `password_file` or `[server.tls]`; the loader
//! only reads them.)
#![no_main]

use access_broker::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = Config::from_toml(text, "fuzz.toml") {
        assert!(!err.to_string().is_empty());
    }
});
