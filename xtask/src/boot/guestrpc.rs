//! VMware's backdoor as iPXE uses it: `GET_VERSION` and the GuestRPC channel that serves
//! `info-get guestinfo.<key>`. QEMU's vmport answers GET_VERSION only, so the boot test stops
//! the guest on each backdoor `inl` and answers it here.
//!
//! The register protocol follows iPXE's `arch/x86/include/ipxe/{vmware,guestrpc}.h`: eax holds
//! the magic, ecx the command (and GuestRPC subcommand in its high half), dx the port (and the
//! channel in edx's high half), ebx the parameter. Replies come back in ebx/ecx/edx; ecx's high
//! half is the status word iPXE compares exactly.

use std::collections::BTreeMap;

pub const MAGIC: u32 = 0x564d_5868;
pub const PORT: u16 = 0x5658;
pub const CMD_GET_VERSION: u16 = 0x0a;
pub const CMD_GUESTRPC: u16 = 0x1e;
/// "RPCI": the guest-to-host direction, the only one iPXE opens.
pub const RPCI: u32 = 0x4943_5052;

pub const OPEN: u16 = 0;
pub const COMMAND_LEN: u16 = 1;
pub const COMMAND_DATA: u16 = 2;
pub const REPLY_LEN: u16 = 3;
pub const REPLY_DATA: u16 = 4;
pub const REPLY_FINISH: u16 = 5;
pub const CLOSE: u16 = 6;

/// The status words iPXE checks, by subcommand.
pub const STATUS_OK: u32 = 0x0001_0000;
pub const STATUS_COMMAND_LEN_OK: u32 = 0x0081_0000;
pub const STATUS_REPLY_LEN_OK: u32 = 0x0083_0000;
/// Anything without the success bit; iPXE treats it as a protocol error.
pub const STATUS_FAIL: u32 = 0;

/// What VMware answers for a key that is not set.
pub const NOT_FOUND: &str = "0 No value found";
const CHANNELS: usize = 8;

/// The four registers a backdoor call reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Regs {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

#[derive(Debug, Default, Clone)]
struct Channel {
    command: Vec<u8>,
    command_len: usize,
    reply: Vec<u8>,
    reply_at: usize,
    reply_id: u16,
}

impl Channel {
    /// The reply's next four bytes, little-endian, zero-padded at its end.
    fn next_reply_word(&mut self) -> u32 {
        let mut word = [0u8; 4];
        let end = (self.reply_at + 4).min(self.reply.len());
        let chunk = self.reply.get(self.reply_at..end).unwrap_or_default();
        word[..chunk.len()].copy_from_slice(chunk);
        self.reply_at = end;
        u32::from_le_bytes(word)
    }
}

/// The host side of the backdoor for one VM: its guestinfo keys and what the guest asked.
#[derive(Debug, Default)]
pub struct Backdoor {
    keys: BTreeMap<String, String>,
    channels: [Option<Channel>; CHANNELS],
    next_reply_id: u16,
    /// Every backdoor call, answered or not.
    pub calls: usize,
    /// Every GuestRPC command the guest completed, in order, as sent.
    pub commands: Vec<String>,
}

impl Backdoor {
    /// `keys` as `vmx --format json` prints them: full VMX names (`guestinfo.ipxe.net0.ip`).
    pub fn new(keys: BTreeMap<String, String>) -> Backdoor {
        Backdoor {
            keys,
            ..Backdoor::default()
        }
    }

    /// Answers one `inl` on the backdoor port; `None` when the registers are not a backdoor call
    /// (wrong magic or port), which the caller lets the CPU execute as it is.
    pub fn call(&mut self, r: Regs) -> Option<Regs> {
        if r.eax != MAGIC || r.edx as u16 != PORT {
            return None;
        }
        self.calls += 1;
        let mut out = r;
        match r.ecx as u16 {
            CMD_GET_VERSION => {
                // Version 6, magic echoed, product type 2 (ESX server).
                out.eax = 6;
                out.ebx = MAGIC;
                out.ecx = 2;
            }
            CMD_GUESTRPC => self.guestrpc(r, &mut out),
            // Unknown commands leave eax all ones, as VMware does.
            _ => out.eax = u32::MAX,
        }
        Some(out)
    }

    /// Opens a channel for an RPCI call, if one is free.
    fn open(&mut self, r: Regs, out: &mut Regs) {
        if r.ebx != RPCI {
            return;
        }
        if let Some(free) = self.channels.iter().position(Option::is_none) {
            self.channels[free] = Some(Channel::default());
            out.ecx = STATUS_OK;
            out.edx = (free as u32) << 16 | u32::from(PORT);
        }
    }

    fn guestrpc(&mut self, r: Regs, out: &mut Regs) {
        let sub = (r.ecx >> 16) as u16;
        let id = (r.edx >> 16) as usize;
        out.ecx = STATUS_FAIL;
        if sub == OPEN {
            return self.open(r, out);
        }
        let next_id = &mut self.next_reply_id;
        let Some(Some(ch)) = self.channels.get_mut(id) else {
            return;
        };
        match sub {
            COMMAND_LEN => {
                ch.command.clear();
                ch.command_len = r.ebx as usize;
                out.ecx = STATUS_COMMAND_LEN_OK;
                if ch.command_len == 0 {
                    self.execute(id);
                }
            }
            COMMAND_DATA if ch.command.len() < ch.command_len => {
                let want = (ch.command_len - ch.command.len()).min(4);
                ch.command.extend_from_slice(&r.ebx.to_le_bytes()[..want]);
                out.ecx = STATUS_OK;
                if ch.command.len() == ch.command_len {
                    *next_id = next_id.wrapping_add(1);
                    ch.reply_id = *next_id;
                    self.execute(id);
                }
            }
            REPLY_LEN => {
                out.ecx = STATUS_REPLY_LEN_OK;
                out.ebx = ch.reply.len() as u32;
                out.edx = u32::from(ch.reply_id) << 16 | (r.edx & 0xffff);
            }
            REPLY_DATA if r.ebx as u16 == ch.reply_id => {
                out.ebx = ch.next_reply_word();
                out.ecx = STATUS_OK;
            }
            REPLY_FINISH if r.ebx as u16 == ch.reply_id => {
                ch.reply.clear();
                ch.reply_at = 0;
                out.ecx = STATUS_OK;
            }
            CLOSE => {
                self.channels[id] = None;
                out.ecx = STATUS_OK;
            }
            _ => {}
        }
    }

    fn execute(&mut self, id: usize) {
        let Some(ch) = self.channels[id].as_mut() else {
            return;
        };
        let command = String::from_utf8_lossy(&ch.command).into_owned();
        let reply = match command.strip_prefix("info-get ") {
            Some(key) => match self.keys.get(key) {
                Some(value) => format!("1 {value}"),
                None => NOT_FOUND.to_string(),
            },
            None => "0 Unknown command".to_string(),
        };
        ch.reply = reply.into_bytes();
        ch.reply_at = 0;
        self.commands.push(command);
    }

    /// The guestinfo keys the guest asked for (`info-get` without the prefix), first ask first.
    pub fn keys_asked(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for c in &self.commands {
            if let Some(k) = c.strip_prefix("info-get ") {
                if !seen.contains(&k) {
                    seen.push(k);
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(sub: u16, channel: u16, ebx: u32) -> Regs {
        Regs {
            eax: MAGIC,
            ebx,
            ecx: u32::from(sub) << 16 | u32::from(CMD_GUESTRPC),
            edx: u32::from(channel) << 16 | u32::from(PORT),
        }
    }

    /// Drives one command the way iPXE's `guestrpc_command` does: length, little-endian
    /// words of four bytes, reply length, reply words, finish.
    fn command(bd: &mut Backdoor, channel: u16, text: &str) -> (u32, Vec<u8>) {
        let r = bd
            .call(rpc(COMMAND_LEN, channel, text.len() as u32))
            .unwrap();
        assert_eq!(r.ecx, STATUS_COMMAND_LEN_OK);
        for chunk in text.as_bytes().chunks(4) {
            let mut w = [0u8; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            let r = bd
                .call(rpc(COMMAND_DATA, channel, u32::from_le_bytes(w)))
                .unwrap();
            assert_eq!(r.ecx, STATUS_OK);
        }
        let r = bd.call(rpc(REPLY_LEN, channel, 0)).unwrap();
        assert_eq!(r.ecx, STATUS_REPLY_LEN_OK);
        let (len, id) = (r.ebx, (r.edx >> 16) as u16);
        let mut reply = Vec::new();
        for _ in 0..len.div_ceil(4) {
            let r = bd.call(rpc(REPLY_DATA, channel, u32::from(id))).unwrap();
            assert_eq!(r.ecx, STATUS_OK);
            reply.extend(r.ebx.to_le_bytes());
        }
        reply.truncate(len as usize);
        let r = bd.call(rpc(REPLY_FINISH, channel, u32::from(id))).unwrap();
        assert_eq!(r.ecx, STATUS_OK);
        (len, reply)
    }

    fn open(bd: &mut Backdoor) -> u16 {
        let r = bd.call(rpc(OPEN, 0, RPCI)).unwrap();
        assert_eq!(
            r.ecx, STATUS_OK,
            "open succeeds with iPXE's exact status word"
        );
        (r.edx >> 16) as u16
    }

    fn keys() -> BTreeMap<String, String> {
        [("guestinfo.ipxe.net0.ip", "10.0.2.15")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_set_key_is_answered_with_its_value() {
        let mut bd = Backdoor::new(keys());
        let ch = open(&mut bd);
        let (len, reply) = command(&mut bd, ch, "info-get guestinfo.ipxe.net0.ip");
        assert_eq!(reply, b"1 10.0.2.15");
        assert_eq!(len, 11, "the reply length counts the two status bytes");
        // iPXE reads the status as a little-endian u16 and compares it with "1 ".
        assert_eq!(u16::from_le_bytes([reply[0], reply[1]]), 0x2031);
        assert_eq!(bd.keys_asked(), ["guestinfo.ipxe.net0.ip"]);
    }

    #[test]
    fn an_unknown_key_is_no_value_found() {
        let mut bd = Backdoor::new(keys());
        let ch = open(&mut bd);
        let (_, reply) = command(&mut bd, ch, "info-get guestinfo.ipxe.dns.ipv4");
        assert_eq!(reply, NOT_FOUND.as_bytes());
        let (_, reply) = command(&mut bd, ch, "info-set guestinfo.x 1");
        assert!(reply.starts_with(b"0 "));
    }

    #[test]
    fn a_command_split_over_words_is_reassembled_exactly() {
        let mut bd = Backdoor::new(keys());
        let ch = open(&mut bd);
        // 31 bytes: seven whole words and one of three bytes; the fourth byte of the last word
        // must not become part of the command.
        let text = "info-get guestinfo.ipxe.net0.ip";
        assert_eq!(text.len() % 4, 3);
        bd.call(rpc(COMMAND_LEN, ch, text.len() as u32)).unwrap();
        for chunk in text.as_bytes().chunks(4) {
            let mut w = [b'X'; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            bd.call(rpc(COMMAND_DATA, ch, u32::from_le_bytes(w)))
                .unwrap();
        }
        assert_eq!(bd.commands, [text]);
        // A word past the announced length is refused, not appended.
        let r = bd.call(rpc(COMMAND_DATA, ch, 0x4141_4141)).unwrap();
        assert_eq!(r.ecx, STATUS_FAIL);
    }

    #[test]
    fn every_subcommand_answers_the_status_word_ipxe_checks() {
        let mut bd = Backdoor::new(keys());
        let ch = open(&mut bd);
        command(&mut bd, ch, "info-get guestinfo.ipxe.net0.ip");
        let r = bd.call(rpc(CLOSE, ch, 0)).unwrap();
        assert_eq!(r.ecx, STATUS_OK);
        // A closed channel, or one never opened, fails.
        assert_eq!(bd.call(rpc(COMMAND_LEN, ch, 4)).unwrap().ecx, STATUS_FAIL);
        assert_eq!(bd.call(rpc(REPLY_LEN, 7, 0)).unwrap().ecx, STATUS_FAIL);
        // Open needs the RPCI magic.
        assert_eq!(bd.call(rpc(OPEN, 0, 0x4f4c_4354)).unwrap().ecx, STATUS_FAIL);
        assert_eq!(bd.calls, 19, "every call counted, failed ones too");
    }

    #[test]
    fn reply_data_needs_the_current_reply_id() {
        let mut bd = Backdoor::new(keys());
        let ch = open(&mut bd);
        command(&mut bd, ch, "info-get a");
        bd.call(rpc(COMMAND_LEN, ch, 10)).unwrap();
        for w in [b"info", b"-get", b" b\0\0"] {
            bd.call(rpc(COMMAND_DATA, ch, u32::from_le_bytes(*w)))
                .unwrap();
        }
        let r = bd.call(rpc(REPLY_LEN, ch, 0)).unwrap();
        let id = (r.edx >> 16) as u16;
        assert_eq!(id, 2, "each command gets a new reply id");
        assert_eq!(
            bd.call(rpc(REPLY_DATA, ch, u32::from(id - 1))).unwrap().ecx,
            STATUS_FAIL
        );
    }

    #[test]
    fn get_version_and_non_backdoor_calls() {
        let mut bd = Backdoor::default();
        let r = bd
            .call(Regs {
                eax: MAGIC,
                ebx: 0,
                ecx: u32::from(CMD_GET_VERSION),
                edx: u32::from(PORT),
            })
            .unwrap();
        assert_eq!(r.ebx, MAGIC, "vmware_present() checks the echoed magic");
        assert!(bd
            .call(Regs {
                eax: 0,
                ecx: u32::from(CMD_GET_VERSION),
                edx: u32::from(PORT),
                ..Regs::default()
            })
            .is_none());
        assert!(bd
            .call(Regs {
                eax: MAGIC,
                edx: 0x1f0,
                ..Regs::default()
            })
            .is_none());
    }
}
