/*
 * parse.c — the frame parser.  Ethernet, up to two VLAN tags (802.1Q, 802.1ad), MPLS (the outer
 * label stack entry; its payload is not parsed, as Open vSwitch's), ARP, IPv4
 * (options, fragments), IPv6 (extension headers, fragments), TCP, UDP, SCTP, ICMPv4, ICMPv6
 * with neighbour discovery.  Every read is bounds-checked against the frame's length: a
 * truncated or malformed header ends parsing there and leaves the rest of the key zero.
 */
#include <stdbool.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <rte_byteorder.h>

#include "parse.h"
#include "util.h"

#define ETH_TYPE_IPV4 0x0800
#define ETH_TYPE_ARP 0x0806
#define ETH_TYPE_VLAN 0x8100
#define ETH_TYPE_QINQ 0x88a8
#define ETH_TYPE_IPV6 0x86dd
#define ETH_TYPE_MPLS 0x8847
#define ETH_TYPE_MPLS_MCAST 0x8848
#define ETH_TYPE_NONE 0x05ff          /* an 802.3 length field: no Ethernet II type */

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_SCTP_ 132
#define IPPROTO_ICMPV6_ 58

/* Zero a key with plain vector stores: a memset of 120 bytes compiles to 'rep stos' here, whose
 * start-up cost was a third of the whole per-packet budget. */
static inline void
key_zero(struct dps_flow_key *k)
{
#ifdef __SSE2__
    _Static_assert(sizeof *k == 120, "key_zero writes 7 x 16 + 8 bytes");
    __m128i z = _mm_setzero_si128(), *v = (__m128i *)(void *)k;
    _mm_storeu_si128(v + 0, z);
    _mm_storeu_si128(v + 1, z);
    _mm_storeu_si128(v + 2, z);
    _mm_storeu_si128(v + 3, z);
    _mm_storeu_si128(v + 4, z);
    _mm_storeu_si128(v + 5, z);
    _mm_storeu_si128(v + 6, z);
    _mm_storel_epi64(v + 7, z);
#else
    memset(k, 0, sizeof *k);
#endif
}

/* TCP, UDP, SCTP, ICMP: the transport fields, if the whole header is there. */
static void
parse_l4(const uint8_t *f, uint32_t ofs, uint32_t end, struct dps_flow_key *k, bool v6)
{
    uint32_t room = end > ofs ? end - ofs : 0;
    const uint8_t *p = f + ofs;
    switch (k->nw_proto) {
    case IPPROTO_TCP_:
        if (room >= 20 && (p[12] >> 4) >= 5) {
            memcpy(&k->tp_src, p, 4);
            k->tcp_flags = rte_cpu_to_be_16(dps_get_be16(p + 12) & 0x0fff);
        }
        break;
    case IPPROTO_UDP_:
        if (room >= 8)
            memcpy(&k->tp_src, p, 4);
        break;
    case IPPROTO_SCTP_:
        if (room >= 12)
            memcpy(&k->tp_src, p, 4);
        break;
    case IPPROTO_ICMP_:
        if (!v6 && room >= 4) {
            k->tp_src = rte_cpu_to_be_16(p[0]);
            k->tp_dst = rte_cpu_to_be_16(p[1]);
        }
        break;
    case IPPROTO_ICMPV6_:
        if (!v6 || room < 4)
            break;
        k->tp_src = rte_cpu_to_be_16(p[0]);
        k->tp_dst = rte_cpu_to_be_16(p[1]);
        /* Neighbour solicitation (135) / advertisement (136): target and link-layer options. */
        if ((p[0] == 135 || p[0] == 136) && p[1] == 0 && room >= 24) {
            memcpy(k->nd_target, p + 8, 16);
            for (uint32_t o = 24; o + 8 <= room;) {
                uint32_t olen = p[o + 1] * 8u;
                if (olen == 0 || o + olen > room)
                    break;
                if (p[o] == 1 && olen == 8)
                    memcpy(k->arp_sha, p + o + 2, 6);
                else if (p[o] == 2 && olen == 8)
                    memcpy(k->arp_tha, p + o + 2, 6);
                o += olen;
            }
        }
        break;
    }
}

static uint32_t
parse_ipv4(const uint8_t *f, uint32_t ofs, uint32_t len, struct dps_flow_key *k, uint32_t *end)
{
    const uint8_t *p = f + ofs;
    if (len - ofs < 20 || (p[0] >> 4) != 4)
        return 0;
    uint32_t ihl = (p[0] & 0x0f) * 4u;
    if (ihl < 20 || ihl > len - ofs)
        return 0;
    uint32_t tot = dps_get_be16(p + 2);
    *end = (tot >= ihl && ofs + tot < len) ? ofs + tot : len;   /* Ethernet padding is not payload */
    memcpy(k->nw_src, p + 12, 4);
    memcpy(k->nw_dst, p + 16, 4);
    k->nw_tos = p[1];
    k->nw_ttl = p[8];
    k->nw_proto = p[9];
    uint16_t frag = dps_get_be16(p + 6);
    if (frag & 0x3fff) {                       /* MF or an offset */
        k->nw_frag = DPS_FRAG_ANY;
        if (frag & 0x1fff) {
            k->nw_frag |= DPS_FRAG_LATER;
            return 0;                          /* later fragments carry no L4 header */
        }
    }
    return ofs + ihl;
}

static uint32_t
parse_ipv6(const uint8_t *f, uint32_t ofs, uint32_t len, struct dps_flow_key *k, uint32_t *end)
{
    const uint8_t *p = f + ofs;
    if (len - ofs < 40 || (p[0] >> 4) != 6)
        return 0;
    uint32_t vtcfl;
    memcpy(&vtcfl, p, 4);
    vtcfl = rte_be_to_cpu_32(vtcfl);
    uint32_t plen = dps_get_be16(p + 4);
    *end = ofs + 40 + plen < len ? ofs + 40 + plen : len;
    k->nw_tos = (uint8_t)(vtcfl >> 20);
    k->ipv6_label = rte_cpu_to_be_32(vtcfl & 0xfffff);
    k->nw_ttl = p[7];
    memcpy(k->nw_src, p + 8, 16);
    memcpy(k->nw_dst, p + 24, 16);
    uint8_t nh = p[6];
    ofs += 40;
    len = *end;                                /* extension headers lie within the payload */
    for (int i = 0; i < 16; i++) {            /* extension headers, bounded */
        k->nw_proto = nh;
        if (nh == 0 || nh == 43 || nh == 60 || nh == 51) {     /* hop-by-hop, routing, dst opts, AH */
            if (len - ofs < 8)
                return 0;
            uint32_t hl = nh == 51 ? (f[ofs + 1] + 2u) * 4u : (f[ofs + 1] + 1u) * 8u;
            if (hl > len - ofs)
                return 0;
            nh = f[ofs];
            ofs += hl;
        } else if (nh == 44) {                 /* fragment */
            if (len - ofs < 8)
                return 0;
            uint16_t fo = dps_get_be16(f + ofs + 2);
            nh = f[ofs];
            ofs += 8;
            if (fo & 0xfff9) {                 /* offset or M */
                k->nw_frag = DPS_FRAG_ANY;
                if (fo & 0xfff8) {             /* a later fragment: nw_proto stays 44 (as OVS) */
                    k->nw_frag |= DPS_FRAG_LATER;
                    return 0;
                }
            }
        } else {
            return ofs;
        }
    }
    return 0;
}

void
dps_parse_ofs(const uint8_t *f, uint32_t len, uint32_t in_port, struct dps_flow_key *k,
              struct dps_offsets *o)
{
    key_zero(k);
    k->in_port = in_port;
    o->l3 = o->l4 = DPS_OFS_NONE;
    o->l4_end = 0;
    o->n_vlans = 0;
    if (len > UINT16_MAX)
        len = UINT16_MAX;
    if (len < 12)
        return;
    memcpy(k->eth_dst, f, 6);
    memcpy(k->eth_src, f + 6, 6);
    if (len < 14)
        return;
    uint32_t ofs = 12;
    uint16_t type = dps_get_be16(f + ofs);
    while ((type == ETH_TYPE_VLAN || type == ETH_TYPE_QINQ) && o->n_vlans < 2) {
        if (len - ofs < 6) {                   /* a tag type with no room for the tag */
            k->eth_type = rte_cpu_to_be_16(type);
            return;
        }
        k->vlan_tpid[o->n_vlans] = rte_cpu_to_be_16(type);
        k->vlan_tci[o->n_vlans] = rte_cpu_to_be_16(dps_get_be16(f + ofs + 2) | DPS_VLAN_CFI);
        o->n_vlans++;
        ofs += 4;
        type = dps_get_be16(f + ofs);
    }
    ofs += 2;
    k->eth_type = rte_cpu_to_be_16(type < 0x600 ? ETH_TYPE_NONE : type);

    uint32_t l4 = 0, end = 0;
    if (type == ETH_TYPE_MPLS || type == ETH_TYPE_MPLS_MCAST) {
        if (len - ofs >= 4)                    /* the outer LSE; what it carries stays opaque */
            memcpy(&k->mpls_lse, f + ofs, 4);
        return;
    }
    if (type == ETH_TYPE_IPV4) {
        l4 = parse_ipv4(f, ofs, len, k, &end);
        if (end)
            o->l3 = (uint16_t)ofs;
    } else if (type == ETH_TYPE_IPV6) {
        l4 = parse_ipv6(f, ofs, len, k, &end);
        if (end)
            o->l3 = (uint16_t)ofs;
    } else if (type == ETH_TYPE_ARP) {
        const uint8_t *p = f + ofs;
        if (len - ofs >= 28 && dps_get16(p) == rte_cpu_to_be_16(1) && dps_get16(p + 2) == rte_cpu_to_be_16(0x0800)
            && p[4] == 6 && p[5] == 4) {
            o->l3 = (uint16_t)ofs;
            uint16_t op = dps_get_be16(p + 6);
            k->nw_proto = op <= 0xff ? (uint8_t)op : 0;
            memcpy(k->arp_sha, p + 8, 6);
            memcpy(k->nw_src, p + 14, 4);
            memcpy(k->arp_tha, p + 18, 6);
            memcpy(k->nw_dst, p + 24, 4);
        }
        return;
    }
    if (o->l3 != DPS_OFS_NONE)
        o->l4_end = (uint16_t)end;
    if (l4 && l4 < end) {
        o->l4 = (uint16_t)l4;
        parse_l4(f, l4, end, k, type == ETH_TYPE_IPV6);
    }
}

void
dps_parse_l2(const uint8_t *f, uint32_t len, struct dps_flow_key *k)
{
    k->eth_type = 0;
    k->vlan_tci[0] = k->vlan_tci[1] = k->vlan_tpid[0] = k->vlan_tpid[1] = 0;
    if (len < 14)
        return;
    uint32_t ofs = 12, n = 0;
    uint16_t type = dps_get_be16(f + ofs);
    while ((type == ETH_TYPE_VLAN || type == ETH_TYPE_QINQ) && n < 2) {
        if (len - ofs < 6) {
            k->eth_type = rte_cpu_to_be_16(type);
            return;
        }
        k->vlan_tpid[n] = rte_cpu_to_be_16(type);
        k->vlan_tci[n] = rte_cpu_to_be_16(dps_get_be16(f + ofs + 2) | DPS_VLAN_CFI);
        n++;
        ofs += 4;
        type = dps_get_be16(f + ofs);
    }
    k->eth_type = rte_cpu_to_be_16(type < 0x600 ? ETH_TYPE_NONE : type);
}

void
dps_parse(const uint8_t *frame, uint32_t len, uint32_t in_port, struct dps_flow_key *key)
{
    struct dps_offsets o;
    dps_parse_ofs(frame, len, in_port, key, &o);
}
