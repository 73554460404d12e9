//! Stage 4: PCI expansion ROM parsing and the checks every built ROM must pass.
//!
//! Layout (PCI Firmware Specification 3.0): each image starts with 0x55 0xAA and holds at 0x18 the
//! offset of its "PCIR" data structure, which gives vendor, device, image length in 512-byte
//! units, code type and a last-image flag. Images follow each other until that flag is set.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::nic::Nic;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub offset: usize,
    /// Bytes, from the PCIR image length.
    pub length: usize,
    pub vendor: u16,
    pub device: u16,
    /// PCI 3.0 device list (other device ids the image drives).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_list: Vec<u16>,
    pub pcir_revision: u8,
    pub class_code: u32,
    pub code_type: CodeType,
    pub last: bool,
    /// Legacy images: bytes the BIOS copies and runs (header byte 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_size: Option<usize>,
    /// Legacy images must sum to zero over their length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub efi: Option<EfiHeader>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeType {
    X86Legacy,
    OpenFirmware,
    HpPaRisc,
    Efi,
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EfiHeader {
    pub subsystem: u16,
    pub machine_type: u16,
    pub compressed: bool,
    pub image_offset: u16,
}

impl CodeType {
    fn from_byte(b: u8) -> CodeType {
        match b {
            0 => CodeType::X86Legacy,
            1 => CodeType::OpenFirmware,
            2 => CodeType::HpPaRisc,
            3 => CodeType::Efi,
            n => CodeType::Other(n),
        }
    }
}

impl EfiHeader {
    pub fn subsystem_name(&self) -> &'static str {
        match self.subsystem {
            10 => "application",
            11 => "boot-service-driver",
            12 => "runtime-driver",
            _ => "unknown",
        }
    }
    pub fn machine_name(&self) -> &'static str {
        match self.machine_type {
            0x014c => "ia32",
            0x8664 => "x64",
            0x0200 => "ia64",
            0xaa64 => "aarch64",
            0x01c2 => "arm",
            0x5064 => "riscv64",
            0x0ebc => "ebc",
            _ => "unknown",
        }
    }
}

/// Reads a ROM file: a regular file of at most [`crate::input::ROM`]'s 16 MiB, so that a FIFO
/// does not block and /dev/zero does not fill memory.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    crate::input::read(path, crate::input::ROM)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Walks the image chain. Structural damage (no signature, PCIR outside the file, an image
/// running past the end) is an error; checks that a ROM may fail are in [`check`].
pub fn parse(bytes: &[u8]) -> Result<Vec<Image>> {
    let mut images: Vec<Image> = Vec::new();
    let mut offset = 0usize;
    loop {
        let image = image_at(&bytes[offset..], offset, images.len() + 1)?;
        let last = image.last;
        offset += image.length;
        images.push(image);
        if last || offset >= bytes.len() {
            break;
        }
        if images.len() >= 16 {
            bail!("more than 16 images without a last-image flag");
        }
    }
    Ok(images)
}

impl EfiHeader {
    /// The EFI fields of an image's header, where its signature says it has them.
    fn read(img: &[u8]) -> Option<EfiHeader> {
        (u16_at(img, 4) == Some(0x0ef1)).then(|| EfiHeader {
            subsystem: u16_at(img, 0x08).unwrap_or(0),
            machine_type: u16_at(img, 0x0a).unwrap_or(0),
            compressed: u16_at(img, 0x0c) == Some(1),
            image_offset: u16_at(img, 0x16).unwrap_or(0),
        })
    }
}

/// The `n`th image, which starts at `offset` of the file and runs on in `img`.
fn image_at(img: &[u8], offset: usize, n: usize) -> Result<Image> {
    if img.len() < 2 || img[0] != 0x55 || img[1] != 0xaa {
        bail!("image {n} at offset {offset:#x} does not start with the 0x55 0xAA ROM signature");
    }
    if img.len() < 0x1a {
        bail!(
            "image {n} at offset {offset:#x} has the ROM signature but only {} bytes, fewer \
             than the 26 of a ROM header",
            img.len()
        );
    }
    let pcir = usize::from(u16_at(img, 0x18).unwrap_or(0));
    if img.get(pcir..pcir + 4) != Some(b"PCIR".as_slice()) || img.len() < pcir + 0x18 {
        bail!("image at offset {offset:#x}: no PCIR structure at {pcir:#x}");
    }
    let p = &img[pcir..];
    let length = usize::from(u16_at(p, 0x10).unwrap_or(0)) * 512;
    if length == 0 {
        bail!("image at offset {offset:#x}: PCIR image length is zero");
    }
    let code_type = CodeType::from_byte(p[0x14]);
    let pcir_revision = p[0x0c];
    let device_list = match u16_at(p, 0x08) {
        Some(list) if pcir_revision >= 3 && list != 0 => {
            read_device_list(img, pcir + usize::from(list))
        }
        _ => Vec::new(),
    };
    let efi = (code_type == CodeType::Efi)
        .then(|| EfiHeader::read(img))
        .flatten();
    let in_file = img.len() >= length;
    let legacy = code_type == CodeType::X86Legacy;
    let image = Image {
        offset,
        length,
        vendor: u16_at(p, 4).unwrap_or(0),
        device: u16_at(p, 6).unwrap_or(0),
        device_list,
        pcir_revision,
        class_code: u32::from(p[0x0d]) | u32::from(p[0x0e]) << 8 | u32::from(p[0x0f]) << 16,
        code_type,
        last: p[0x15] & 0x80 != 0,
        init_size: legacy.then(|| usize::from(img[2]) * 512),
        checksum_ok: (legacy && in_file)
            .then(|| img[..length].iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0),
        efi,
    };
    if !in_file {
        bail!(
            "image at offset {offset:#x} says it is {length} bytes, but only {} remain in the file",
            img.len()
        );
    }
    Ok(image)
}

fn read_device_list(img: &[u8], at: usize) -> Vec<u16> {
    (0..64)
        .map_while(|i| u16_at(img, at + 2 * i).filter(|&d| d != 0))
        .collect()
}

/// What the checks found; empty `problems` means the ROM passes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub size: u64,
    pub limit: u64,
    pub images: Vec<Image>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
    pub fn headroom(&self) -> i64 {
        self.limit as i64 - self.size as i64
    }
}

/// Checks a ROM built for `nic`: signature, ids, checksum, lengths, size limit.
pub fn check(bytes: &[u8], nic: &Nic, limit: u64) -> Report {
    let size = bytes.len() as u64;
    let mut problems = Vec::new();
    let images = match parse(bytes) {
        Ok(images) => images,
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    if let Some(first) = images.first() {
        if (first.vendor, first.device) != (nic.vendor, nic.device) {
            problems.push(format!(
                "PCI id is {:04x}:{:04x}, but {} is {:04x}:{:04x}",
                first.vendor, first.device, nic.name, nic.vendor, nic.device
            ));
        }
        if first.code_type != CodeType::X86Legacy {
            problems.push(format!(
                "first image is {:?} code, not x86 legacy BIOS",
                first.code_type
            ));
        }
        if first.checksum_ok == Some(false) {
            problems.push("checksum byte is wrong: the image bytes do not sum to zero".into());
        }
        let chained: usize = images.iter().map(|i| i.length).sum();
        if chained as u64 != size {
            problems.push(format!(
                "images add up to {chained} bytes, but the file is {size} bytes"
            ));
        }
        if images.last().is_some_and(|i| !i.last) {
            problems.push("the last image does not carry the last-image flag".into());
        }
    }
    if size > limit {
        problems.push(format!(
            "{size} bytes is over the {limit}-byte limit for {} by {} bytes",
            nic.name,
            size - limit
        ));
    }
    Report {
        size,
        limit,
        images,
        problems,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nic::NICS;

    /// A minimal legacy ROM image with a valid checksum, as iPXE lays it out.
    pub(crate) fn rom(vendor: u16, device: u16, blocks: u8, last: bool) -> Vec<u8> {
        let mut b = vec![0u8; usize::from(blocks) * 512];
        b[0] = 0x55;
        b[1] = 0xaa;
        b[2] = blocks;
        b[0x18] = 0x1c;
        b[0x1c..0x20].copy_from_slice(b"PCIR");
        b[0x20..0x22].copy_from_slice(&vendor.to_le_bytes());
        b[0x22..0x24].copy_from_slice(&device.to_le_bytes());
        b[0x26] = 0x1c;
        b[0x28] = 3;
        b[0x29..0x2c].copy_from_slice(&[0, 0, 2]);
        b[0x2c] = blocks;
        b[0x31] = if last { 0x80 } else { 0 };
        fix_checksum(&mut b);
        b
    }

    pub(crate) fn fix_checksum(b: &mut [u8]) {
        b[6] = 0;
        let sum = b.iter().fold(0u8, |a, x| a.wrapping_add(*x));
        b[6] = 0u8.wrapping_sub(sum);
    }

    #[test]
    fn a_good_rom_passes() {
        let r = check(&rom(0x15ad, 0x07b0, 100, true), &NICS[0], 65536);
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.headroom(), 65536 - 51200);
        assert_eq!(r.images[0].init_size, Some(51200));
    }

    #[test]
    fn each_defect_is_named() {
        let good = rom(0x15ad, 0x07b0, 4, true);
        let mut sig = good.clone();
        sig[0] = 0;
        let mut sum = good.clone();
        sum[100] ^= 1;
        let mut padded = good.clone();
        padded.extend([0u8; 512]);
        let cases: [(Vec<u8>, &Nic, u64, &str); 5] = [
            (
                sig,
                &NICS[0],
                65536,
                "does not start with the 0x55 0xAA ROM signature",
            ),
            (
                good.clone(),
                &NICS[1],
                65536,
                "PCI id is 15ad:07b0, but e1000 is 8086:100f",
            ),
            (sum, &NICS[0], 65536, "checksum byte is wrong"),
            (
                padded,
                &NICS[0],
                65536,
                "images add up to 2048 bytes, but the file is 2560 bytes",
            ),
            (
                good,
                &NICS[0],
                1024,
                "2048 bytes is over the 1024-byte limit for vmxnet3 by 1024 bytes",
            ),
        ];
        for (bytes, nic, limit, want) in cases {
            let r = check(&bytes, nic, limit);
            assert!(
                r.problems.iter().any(|p| p.contains(want)),
                "wanted '{want}' in {:?}",
                r.problems
            );
        }
    }

    #[test]
    fn walks_a_chain_of_images() {
        let mut two = rom(0x8086, 0x100f, 8, false);
        two.extend(rom(0x8086, 0x100f, 2, true));
        let imgs = parse(&two).unwrap();
        assert_eq!(imgs.len(), 2);
        assert_eq!(
            (imgs[1].offset, imgs[1].length, imgs[1].last),
            (4096, 1024, true)
        );
        assert!(check(&two, &NICS[1], 65536).ok());
    }

    #[test]
    fn truncated_image_is_structural_damage() {
        let mut b = rom(0x15ad, 0x07b0, 4, true);
        b.truncate(1500);
        let err = parse(&b).unwrap_err().to_string();
        assert!(
            err.contains("says it is 2048 bytes, but only 1500 remain"),
            "{err}"
        );
    }
}
