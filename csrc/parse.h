/*
 * parse.h — frame → flow key, with the header offsets actions need.  Any thread; pure
 * function of the frame bytes; never reads past the length it is given.
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
