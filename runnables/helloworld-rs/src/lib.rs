//! The hello world runnable: answers `hello, ` followed by its input.

use suborbital::runnable::{RunErr, Runnable};

struct HelloworldRs {}

impl Runnable for HelloworldRs {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {
        suborbital::log::debug("saying hello");
        let mut output = b"hello, ".to_vec();
        output.extend_from_slice(&input);
        Ok(output)
    }
}

suborbital::use_runnable!(HelloworldRs);
