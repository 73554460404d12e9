# Test fixture: an iPXE-shaped Makefile. It takes the variables the tool passes to real iPXE and,
# like real iPXE, leaks the build directory and the clock into the ROM unless it is given
# -ffile-prefix-map=<src>=. and SOURCE_DATE_EPOCH.
HOST_CC		:= gcc
CONFIG_HEADERS	:= $(wildcard config/*.h)
CONFIG_LOCAL	:= $(patsubst config/%,config/local/%,$(CONFIG_HEADERS))
SRCDIR		:= $(if $(findstring -ffile-prefix-map=$(CURDIR)=.,$(EXTRA_CFLAGS)),.,$(CURDIR))
STAMP		:= $(if $(SOURCE_DATE_EPOCH),$(SOURCE_DATE_EPOCH),$(shell date +%s%N))
BLOCKS		= $(lastword 32 $(shell sed -n 's/^\#define FAKE_ROM_BLOCKS //p' $(CONFIG_HEADERS) $(CONFIG_LOCAL)))

$(CONFIG_LOCAL) :
	touch $@

util/mkrom : util/mkrom.c
	$(HOST_CC) -O2 -o $@ $<

.PRECIOUS : bin/%.rom.tmp

# The "linked ELF": one object whose obj_<name> symbols depend on the config. Like upstream,
# bin/deps/<source>.d names each object's source and the headers it includes (general has none).
bin/%.rom.tmp : core/objs.c $(CONFIG_HEADERS) $(CONFIG_LOCAL)
	mkdir -p bin/deps/core
	$(HOST_CC) -c -I. -o $@ core/objs.c
	for s in core/main.c core/objs.c; do \
	  $(HOST_CC) -I. -M -MP $$s | sed 's/\.o[[:blank:]]*:/_DEPS +=/' > bin/deps/$$s.d || exit 1; done
	{ echo "Linker script and memory map"; echo ".textdata 0x0 0x0"; \
	  printf ' .text.main 0x0 0x%x bin/blib.a(main.o)\n' $$(cat core/main.c | wc -c); \
	  printf ' .text.objs 0x0 0x%x bin/blib.a(objs.o)\n' $$(cat core/objs.c | wc -c); \
	  printf ' .text.general 0x0 0x%x bin/blib.a(general.o)\n' $$(cat config/local/general.h | wc -c); } > $@.map

# Like upstream v2.0.0, a TRUST= change is noticed only when the list of names changes: the
# trusted files' content is not a prerequisite.
COMMA		:= ,
TRUSTED_LIST	:= bin/.trusted.list
TRUST_OLD	:= $(shell cat $(TRUSTED_LIST) 2>/dev/null)
ifneq ($(TRUST_OLD),$(TRUST))
$(shell mkdir -p bin; echo "$(TRUST)" > $(TRUSTED_LIST))
endif

$(TRUSTED_LIST) :
	mkdir -p bin
	echo "$(TRUST)" > $@

bin/rootcert.txt : $(TRUSTED_LIST)
	cat /dev/null $(subst $(COMMA), ,$(TRUST)) > $@

bin/%.rom : bin/%.rom.tmp bin/rootcert.txt util/mkrom $(CONFIG_LOCAL) core/main.c $(EMBED)
	mkdir -p bin
	{ echo "$(CROSS)gcc $(GITVERSION) $(STAMP) $(SRCDIR)"; cat $(CONFIG_LOCAL) core/main.c $(EMBED) bin/rootcert.txt; } > $@.payload
	./util/mkrom $* $(BLOCKS) $@.payload $@
