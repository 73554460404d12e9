/* Test fixture: writes a valid legacy PCI option ROM around a payload, as iPXE's tools do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: mkrom PCIID BLOCKS PAYLOAD OUT\n");
		return 2;
	}
	unsigned long id = strtoul(argv[1], NULL, 16);
	unsigned int vendor = id >> 16, device = id & 0xffff;
	int blocks = atoi(argv[2]);
	size_t len = (size_t) blocks * 512;
	unsigned char *b = calloc(len, 1);
	FILE *p = fopen(argv[3], "rb");
	if (!b || !p || blocks < 1 || blocks > 255) {
		fprintf(stderr, "mkrom: bad arguments\n");
		return 1;
	}
	size_t n = fread(b + 64, 1, len - 64, p);
	if (!feof(p)) {
		fprintf(stderr, "mkrom: payload (over %zu bytes) does not fit\n", n);
		return 1;
	}
	fclose(p);
	b[0] = 0x55; b[1] = 0xaa; b[2] = blocks; b[0x18] = 0x1c;
	memcpy(b + 0x1c, "PCIR", 4);
	b[0x20] = vendor; b[0x21] = vendor >> 8; b[0x22] = device; b[0x23] = device >> 8;
	b[0x26] = 0x1c; b[0x28] = 3; b[0x2b] = 2; b[0x2c] = blocks; b[0x31] = 0x80;
	unsigned char sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += b[i];
	b[6] = -sum;
	FILE *o = fopen(argv[4], "wb");
	if (!o || fwrite(b, 1, len, o) != len || fclose(o) != 0) {
		fprintf(stderr, "mkrom: cannot write %s\n", argv[4]);
		return 1;
	}
	return 0;
}
