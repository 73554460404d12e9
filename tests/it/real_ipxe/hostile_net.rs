//! The default ROM against a hostile network: a rogue DHCP server on the guest's segment, and
//! an HTTP server whose chunk sizes and Content-Length run up to 2^32. The ROM must refuse
//! what is malformed, boot from the good server, and end within the time limit. Nothing here
//! names an iPXE version or error code: the tests hold whatever the project pins.

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{boot_rows, boot_test_guestinfo, have, vmx_json, Real};
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

/// The hostile responses, each with a script in its body that would fetch `/executed` from
/// this server if the ROM ever ran it.
fn hostile_responses(port: u16) -> Vec<Hostile> {
    let canary = format!("#!ipxe\nchain http://10.0.2.2:{port}/executed\n");
    let (first, rest) = canary.split_at(16);
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let length = |n: u32| format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n{canary}");
    [
        (
            "/chunk-ffffffff",
            format!("{chunked}ffffffff\r\n{canary}"),
            Then::Hold,
        ),
        (
            "/chunk-fffffff0",
            format!("{chunked}fffffff0\r\n{canary}"),
            Then::Close,
        ),
        // A 16-byte chunk, then one that takes the running length to 2^32, which is 0 in 32 bits.
        (
            "/chunk-wraps",
            format!("{chunked}10\r\n{first}\r\nfffffff0\r\n{rest}"),
            Then::Close,
        ),
        ("/length-4294967295", length(u32::MAX), Then::Hold),
        ("/length-4294967294", length(u32::MAX - 1), Then::Close),
    ]
    .into_iter()
    .map(|(path, response, then)| Hostile {
        path: path.into(),
        response: response.into_bytes(),
        then,
    })
    .collect()
}

#[test]
fn lengths_near_2_to_the_32_are_refused_and_the_rom_chains_the_good_script() {
    let Some(real) = Real::find() else { return };
    if !have_qemu() {
        return;
    }
    let rom = default_rom(&real, "hostile-http-rom");
    let server = HostileHttp::start(PEER_LIMIT, hostile_responses);
    let hostile = hostile_responses(server.port);
    // iPXE runs `a && b || c` left to right on the last status: each hostile chain runs once
    // the one before it failed, and `chain ${filename}` (boot-test's script) after the last.
    let urls: Vec<String> = hostile
        .iter()
        .map(|h| format!("http://10.0.2.2:{}{}", server.port, h.path))
        .collect();
    let scriptlet = format!(
        "ifopen net0 && chain {} || chain ${{filename}}",
        urls.join(" || chain ")
    );
    let port = free_port();
    let good = format!("http://10.0.2.2:{port}/boot.ipxe");
    let keys = real.out("hostile-http.json");
    let json = vmx_json(&real, "vmxnet3", &rom, &good, &["--scriptlet", &scriptlet]);
    fs::write(&keys, json).unwrap();
    let kept = real.out("hostile-http");
    let run = boot_test_guestinfo(&real, &rom, &keys, port, 90, &kept);
    let visits = server.finish();
    let text = stdout(&run);
    let screen = fs::read_to_string(kept.join("boot-0-guestinfo/screen.txt")).unwrap_or_default();
    let errors = qemu::ipxe_errors(&screen);
    eprintln!(
        "{text}\nthe hostile server: {visits:?}\niPXE's errors:\n{}",
        errors.join("\n")
    );
    for h in &hostile {
        let visit = visits.iter().find(|v| v.path == h.path);
        assert!(visit.is_some(), "the ROM never fetched {}:\n{text}", h.path);
        // Refused cleanly: iPXE's error on screen, and a response held open was hung up on.
        assert!(
            errors.iter().any(|e| e.contains(&h.path)),
            "no iPXE error for {} on screen:\n{screen}",
            h.path
        );
        if h.then == Then::Hold {
            assert!(
                visit.is_some_and(|v| v.hung_up),
                "the ROM waited on {} until the server closed\n{text}",
                h.path
            );
        }
    }
    // Nothing of theirs ran: a script from their bodies would have fetched /executed.
    let others: Vec<&Visit> = visits
        .iter()
        .filter(|v| !hostile.iter().any(|h| h.path == v.path))
        .collect();
    assert!(
        others.is_empty(),
        "the ROM also fetched {others:?}:\n{text}"
    );
    // Then boot-test's script, fetched and reported back from guestinfo, in time.
    ok(&run);
    let row = &boot_rows(&text)[0];
    assert_eq!(
        [&row["booted"], &row["address"], &row["dhcp"], &row["http"]],
        ["yes", "10.0.2.15", "0", "2"],
        "{text}"
    );
    ci_report(&format!(
        "hostile HTTP: the good script requested after {}; iPXE said:\n{}\n",
        row["first-req"],
        errors.join("\n")
    ));
}
