/*
 * parse.h — frame → flow key, with the header offsets actions need.
 *
 * Contract:
 *   - Callers: a PMD thread per frame (pmd.c: dps_parse_l2 for the cheap path's L2 match,
 *     dps_parse_ofs for the full lookup, dps_parse, in dpdkswitch.h, for a recirculated frame);
 *     the executor's masked set-field (actions.c), on the thread running it; the control
 *     thread for packet-out (upcall.c); the fuzz target alone (csrc/fuzz/fuzz_parse.c).
 *   - Any thread; a pure function of the frame bytes, no state; never reads past the length
 *     it is given.
 *   - Cost: one pass over the headers (clearing the key, then each header once; an ICMPv6
 *     neighbour discovery's options are walked): a few tens of cycles a frame (the bench's
 *     "parse" stage).  dps_parse_l2 reads the Ethernet header and its VLAN tags only.
 */
#ifndef DPS_PARSE_H
#define DPS_PARSE_H 1

#include <stdint.h>

#include "dpdkswitch.h"

#define DPS_OFS_NONE 0xffff

struct dps_offsets {
    uint16_t l3;                      /* start of the IP/ARP header, or DPS_OFS_NONE */
    uint16_t l4;                      /* start of the TCP/UDP/SCTP/ICMP header, or DPS_OFS_NONE */
    uint16_t l4_end;                  /* end of the IP payload within the frame */
    uint8_t n_vlans;
};

void dps_parse_ofs(const uint8_t *frame, uint32_t len, uint32_t in_port, struct dps_flow_key *key,
                   struct dps_offsets *ofs);

/* Only eth_type, vlan_tci and vlan_tpid of KEY, as dps_parse_ofs would set them. */
void dps_parse_l2(const uint8_t *frame, uint32_t len, struct dps_flow_key *key);

#endif
