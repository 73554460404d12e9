//! `inspect` reads third-party ROMs: no input may make the parser or the checks panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xtask::{nic::NICS, check::romcheck};

fuzz_target!(|data: &[u8]| {
    if let Ok(images) = romcheck::parse(data) {
        let total: usize = images.iter().map(|i| i.length).sum();
        assert!(total <= data.len(), "images claim more bytes than the file has");
    }
    for nic in NICS {
        let report = romcheck::check(data, nic, nic.default_limit);
        assert_eq!(report.size, data.len() as u64);
    }
});
