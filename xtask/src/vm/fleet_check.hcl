flatten([for name, vm in var.ipxe_vms : [for p in [try([for m in concat(
    [for f in [["ip", vm.ip], ["gateway", vm.gateway], ["dns", vm.dns], ["chain", vm.chain]] :
      [for c in [regex(@FORBIDDEN@, f[1])] : [for n in [@CODE@] :
        format(@M_CHARACTER@, f[0], @KIND@, n, length(regexall("(?s).", regex(@NOT_FORBIDDEN@, f[1]))) + 1)
      ][0]][0]
    if length(regexall(@FORBIDDEN@, f[1])) > 0],
    [[for s in [split("/", vm.ip)] : [for addr in [s[0]] : [for len in [join("/", slice(s, 1, length(s)))] :
      [for oklen in [can(regex("^[0-9]{1,2}$", len)) && try(tonumber(len) >= 1 && tonumber(len) <= 32, false)] :
      [for size in [oklen ? try(pow(2, 32 - tonumber(len)), 1) : 1] :
      [for a in [try(sum([for i, o in split(".", addr) : tonumber(o) * pow(256, 3 - i)]), 0)] :
      [for g in [try(sum([for i, o in split(".", vm.gateway) : tonumber(o) * pow(256, 3 - i)]), 0)] :
      [for net in [a - a % size] :
        length(s) < 2 ? format(@M_NO_PREFIX@, "ip", vm.ip, vm.ip) :
        !can(regex(@V4@, addr)) ? format(@M_BAD_ADDRESS@, "ip", vm.ip, addr) :
        !oklen ? format(@M_BAD_PREFIX@, "ip", vm.ip) :
        size > 2 && (a == net || a == net + size - 1) ? format(@M_NOT_A_HOST@, "ip", vm.ip) :
        !can(regex(@V4@, vm.gateway)) ? format(@M_NOT_IPV4@, "gateway", vm.gateway) :
        g - g % size != net || g == a || (size > 2 && (g == net || g == net + size - 1)) ? format(@M_UNREACHABLE@, "gateway", vm.gateway,
          format("%d.%d.%d.%d", floor(net / 16777216), floor(net / 65536) % 256, floor(net / 256) % 256, net % 256), try(tonumber(len), 0)) :
        !can(regex(@V4@, vm.dns)) ? format(@M_NOT_IPV4@, "dns", vm.dns) :
        [for u in [vm.chain] : [for w in [regexall(@WHITESPACE@, u)] :
          [for m in [try(regex("^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)", u), [])] :
          [for scheme in [try(m[0], "")] : [for auth in [try(m[1], "")] :
          [for hp in [try(regex("^(\\[[^\\]]*\\]?|[^:]*)(.*)$", auth), ["", ""])] :
          [for port in [try(tonumber(regex("^:([0-9]{1,5})$", hp[1])[0]), 0)] :
            length(w) > 0 ? [for c in [try(w[0], " ")] : [for n in [@CODE@] :
              format(@M_WHITESPACE@, "chain", n, length(regexall("(?s).", regex(@NOT_WHITESPACE@, u))) + 1)
            ][0]][0] :
            length(m) == 0 ? format(@M_NOT_A_URL@, "chain") :
            !contains(["http", "https"], scheme) ? format(@M_SCHEME@, "chain", scheme) :
            length(split("@", auth)) > 1 ? format(@M_USER_INFO@, "chain") :
            hp[0] == "" ? format(@M_NO_HOST@, "chain") :
            !can(regex("^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._~-]+)$", hp[0])) ? format(@M_BAD_HOST@, "chain", hp[0]) :
            hp[1] != "" && !(port >= 1 && port <= 65535) ? format(@M_BAD_PORT@, "chain", hp[1]) :
            scheme == "https" && !@HTTPS@ ? format(@M_NO_HTTPS@, "chain", u) : ""
        ][0]][0]][0]][0]][0]][0]][0]
      ][0]][0]][0]][0]][0]][0]][0]][0]
    ]
  ) : m if m != ""][0], "")] : "${name}: ${p}" if p != ""]])
