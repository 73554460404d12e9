# vsphere-ipxe-rom: @FILE@ (@NIC@, @SIZE@ bytes) for every VM of var.ipxe_vms, with the keys
# `cargo xtask deploy` sets on one. The ROM's sha256: @SHA256@
# Written by `cargo xtask fleet --format terraform`; the README's "A fleet" shows it in use.
# In the vsphere_virtual_machine resource:
#   for_each     = var.ipxe_vms
#   firmware     = "bios"
#   extra_config = local.ipxe_extra_config[each.key]
# @ADAPTER@

variable "ipxe_vms" {
  description = "The VMs that boot the iPXE ROM: name => { ip = \"address/prefix\", gateway, dns, chain }"
  type = map(object({
    ip      = string
    gateway = string
    dns     = string
    chain   = string
  }))
  # The rules and messages of `cargo xtask vmx` (xtask/src/vm/network.rs): for each VM, the
  # first rule its values break.
  validation {
    condition     = length(@PROBLEMS@) == 0
    error_message = join("\n", @PROBLEMS@)
  }
}

variable "ipxe_datacenter" {
  description = "The datacenter of the datastore the ROM goes to"
  type        = string
}

variable "ipxe_datastore" {
  description = "The datastore the ROM goes to, once for every VM"
  type        = string
}

resource "vsphere_file" "ipxe_rom" {
  datacenter         = var.ipxe_datacenter
  datastore          = var.ipxe_datastore
  source_file        = @SRC@
  destination_file   = @PATH@
  create_directories = true
}

locals {
  ipxe_extra_config = {
    for name, vm in var.ipxe_vms : name => {
@SETTINGS@    }
  }
}
