//! The default ROM against a hostile network: a rogue DHCP server on the guest's segment. The
//! ROM must refuse what is malformed, boot from the good server, and end within the time limit.
//! Nothing here names an iPXE version or error code: the tests hold whatever the project pins.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{boot_rows, have, Real};
use crate::support::{hostile_net::*, *};
use xtask::boot::qemu;

/// How long a hostile peer may run: past two boots (boot-test's second try) of the limits below.
const PEER_LIMIT: Duration = Duration::from_secs(200);

/// The release ROM of the default profile for vmxnet3, built natively from the pin.
fn default_rom(real: &Real, name: &str) -> PathBuf {
    let out = real.out(name);
    ok(&real.build_native(&["--nic", "vmxnet3"], &out));
    out.join("15ad07b0.rom")
}

fn have_qemu() -> bool {
    let found = have("qemu-system-x86_64", "--version");
    if !found {
        skip("qemu-system-x86_64 is missing; apt-get install qemu-system-x86 to boot the ROM on a hostile network");
    }
    found
}

/// DHCP as the guest's NIC saw it, from the pcap QEMU wrote on the NIC's side of the hub.
#[derive(Debug, Default)]
struct Seen {
    /// The rogue's short replies and unterminated offers that reached the NIC before the
    /// guest's first DHCPREQUEST, while the ROM was still choosing an offer.
    short: usize,
    unterminated: usize,
    /// Each DHCPREQUEST's requested address and server identifier.
    requests: Vec<(Ipv4Addr, Ipv4Addr)>,
}

impl Seen {
    fn read(pcap: &Path) -> Seen {
        let data = qemu::read_pcap(pcap).unwrap();
        let mut seen = Seen::default();
        for (_, ip) in qemu::ipv4_packets(&data) {
            let Some(udp) = Udp::in_ipv4(ip) else {
                continue;
            };
            if udp.src == ROGUE_IP && udp.sport == 67 && seen.requests.is_empty() {
                match udp.payload.len() < BOOTP_HEADER + 4 {
                    true => seen.short += 1,
                    false => seen.unterminated += 1,
                }
            } else if udp.dport == 67 && udp.dhcp_type() == Some(3) {
                let addr = |tag| {
                    dhcp_option(udp.payload, tag)
                        .and_then(|v| <[u8; 4]>::try_from(v).ok())
                        .map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from)
                };
                seen.requests.push((addr(50), addr(54)));
            }
        }
        seen
    }
}

#[test]
fn a_rogue_dhcp_server_is_refused_and_the_rom_boots_from_the_good_one() {
    let Some(real) = Real::find() else { return };
    if !have_qemu() {
        return;
    }
    let rom = default_rom(&real, "rogue-dhcp-rom");
    let rogue = RogueDhcp::start(PEER_LIMIT);
    let kept = real.out("rogue-dhcp");
    let run = real.xtask(&[
        "boot-test",
        "--rom",
        rom.to_str().unwrap(),
        "--path",
        "dhcp",
        "--lan-peer",
        &rogue.addr.to_string(),
        "--timeout",
        "60",
        "--keep",
        kept.to_str().unwrap(),
    ]);
    let log = rogue.finish();
    let text = stdout(&run);
    let seen = Seen::read(&kept.join("boot-0-dhcp/guest.pcap"));
    eprintln!("{text}\nthe rogue: {log:?}\nthe NIC: {seen:?}");
    // Not vacuous: the rogue saw the guest's DISCOVERs on the hub and answered each, and its
    // answers reached the NIC while the ROM was choosing an offer.
    assert!(
        log.discovers > 0 && log.sent == 2 * log.discovers,
        "{log:?}\n{text}"
    );
    assert!(
        seen.short > 0 && seen.unterminated > 0,
        "the rogue's answers never reached the NIC before a DHCPREQUEST: {seen:?}\n{text}"
    );
    // Refused: the ROM asks slirp (10.0.2.2) for 10.0.2.15, never anyone for 10.0.2.99.
    let slirps = (Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(10, 0, 2, 2));
    assert!(
        !seen.requests.is_empty() && seen.requests.iter().all(|r| *r == slirps),
        "the ROM requested {:?} (address, server), not only slirp's offer:\n{text}",
        seen.requests
    );
    ok(&run);
    let row = &boot_rows(&text)[0];
    assert_eq!(
        (row["booted"].as_str(), row["address"].as_str()),
        ("yes", "10.0.2.15"),
        "{text}"
    );
    ci_report(&format!(
        "rogue DHCP: {} DISCOVERs answered, {} short and {} unterminated answers at the NIC \
         before the DHCPREQUEST; first request {}\n",
        log.discovers, seen.short, seen.unterminated, row["first-req"]
    ));
}
