/*
 * floor.c: the bare libpcap read loop, the floor for any libpcap-based reader.
 *
 * Opens a capture with pcap_open_offline and calls pcap_next_ex over every
 * record, touching nothing but the header lengths, then prints
 *   packets=<n> bytes=<sum of caplen> wire_bytes=<sum of len>
 * No decoding at all: whatever connscope does beyond this is its own cost.
 *
 * Build: cc -O2 floor.c -lpcap -o floor      Usage: floor FILE
 */
#include <pcap/pcap.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    struct pcap_pkthdr *hdr;
    const u_char *data;
    unsigned long long packets = 0, bytes = 0, wire = 0;
    pcap_t *p;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    p = pcap_open_offline(argv[1], errbuf);
    if (p == NULL) {
        fprintf(stderr, "%s: %s\n", argv[1], errbuf);
        return 1;
    }
    while ((rc = pcap_next_ex(p, &hdr, &data)) == 1) {
        packets++;
        bytes += hdr->caplen;
        wire += hdr->len;
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "%s: %s\n", argv[1], pcap_geterr(p));
        pcap_close(p);
        return 1;
    }
    pcap_close(p);
    printf("packets=%llu bytes=%llu wire_bytes=%llu\n", packets, bytes, wire);
    return 0;
}
