/*
 * fuzz_parse.c — libFuzzer target for the frame parser (csrc/parse.c).
 *
 * Each input is one frame.  It is copied into a heap buffer of exactly its size, so that
 * AddressSanitizer reports any read past `len`, then parsed with dps_parse_ofs().  The
 * resulting key and offsets are checked against invariants that hold for every frame
 * whatever its bytes (struct dps_flow_key's comments in csrc/include/dpdkswitch.h, struct
 * dps_offsets' in csrc/parse.h); a violation prints which one and aborts, which libFuzzer
 * reports as a crash with a reproducer file.
 *
 * Build and run: scripts/fuzz.sh [SECONDS].  Replay one input: build/fuzz/fuzz_parse FILE.
 *
 * FUZZ_PARSE_IGNORE (environment): comma-separated names of invariants not to check (the
 * names are those printed on a violation), to keep fuzzing past a known, reported finding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "util.h"

#define FUZZ_TARGET "fuzz_parse"
#include "invariant.h"

#define ETH_IPV4 0x0800
#define ETH_ARP 0x0806
#define ETH_IPV6 0x86dd
#define ETH_VLAN 0x8100
#define ETH_QINQ 0x88a8
#define ETH_NONE 0x05ff

static inline uint16_t
be16(uint16_t v)                        /* network-order member -> host */
{
    return (uint16_t)((v >> 8) | (v << 8));
}

static int
zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Bytes of K from member A up to (not including) member B. */
#define ZERO_FROM_TO(k, a, b)                                                                \
    zero((const uint8_t *)(k) + offsetof(struct dps_flow_key, a),                          \
         offsetof(struct dps_flow_key, b) - offsetof(struct dps_flow_key, a))
#define ZERO_FROM(k, a)                                                                      \
    zero((const uint8_t *)(k) + offsetof(struct dps_flow_key, a),                          \
         sizeof(struct dps_flow_key) - offsetof(struct dps_flow_key, a))
#define ZERO_MEMBER(k, m) zero(&(k)->m, sizeof (k)->m)

static void
check(const uint8_t *f, uint32_t len, uint32_t in_port, const struct dps_flow_key *k,
      const struct dps_offsets *o)
{
    /* Metadata and padding. */
    CHECK("in_port", k->in_port == in_port);
    CHECK("metadata_zero", k->recirc_id == 0 && k->dp_hash == 0);
    CHECK("pad_zero", k->pad0 == 0 && k->pad1 == 0 && k->pad2 == 0);

    /* Offsets: inside the frame, in order. */
    CHECK("l3_lt_len", o->l3 == DPS_OFS_NONE || o->l3 < len);
    CHECK("l4_lt_len", o->l4 == DPS_OFS_NONE || o->l4 < len);
    CHECK("l4_end_le_len", o->l4_end <= len);
    CHECK("l4_needs_l3", o->l4 == DPS_OFS_NONE || o->l3 != DPS_OFS_NONE);
    CHECK("l3_lt_l4", o->l4 == DPS_OFS_NONE || o->l3 == DPS_OFS_NONE || o->l3 < o->l4);
    CHECK("l4_le_l4_end", o->l4 == DPS_OFS_NONE || o->l4 <= o->l4_end);
    CHECK("n_vlans_le_2", o->n_vlans <= 2);
    CHECK("l3_after_tags", o->l3 == DPS_OFS_NONE || o->l3 == 14u + 4u * o->n_vlans);

    /* L2. */
    if (len < 12) {
        CHECK("short_frame_empty", ZERO_FROM(k, eth_dst));
        CHECK("short_frame_no_ofs", o->l3 == DPS_OFS_NONE && o->l4 == DPS_OFS_NONE && o->n_vlans == 0);
        return;
    }
    CHECK("eth_addrs", memcmp(k->eth_dst, f, 6) == 0 && memcmp(k->eth_src, f + 6, 6) == 0);
    uint16_t type = be16(k->eth_type);
    CHECK("eth_type_iff_len14", (type == 0) == (len < 14));
    if (type == 0) {
        CHECK("no_eth_type_rest_zero", ZERO_FROM(k, eth_type));
        CHECK("no_eth_type_no_ofs", o->l3 == DPS_OFS_NONE && o->l4 == DPS_OFS_NONE && o->n_vlans == 0);
        return;
    }
    CHECK("eth_type_range", type >= 0x600 || type == ETH_NONE);

    /* VLAN tags: what the frame says, outer first, CFI set, nothing after a missing tag. */
    unsigned tags = 0;
    for (unsigned i = 0; i < 2; i++) {
        uint16_t tpid = be16(k->vlan_tpid[i]), tci = be16(k->vlan_tci[i]);
        CHECK("vlan_tpid_value", tpid == 0 || tpid == ETH_VLAN || tpid == ETH_QINQ);
        CHECK("vlan_tci_iff_tpid", (tci == 0) == (tpid == 0));
        CHECK("vlan_cfi", tci == 0 || (tci & DPS_VLAN_CFI));
        if (tpid) {
            CHECK("vlan_tags_in_order", tags == i);
            CHECK("vlan_tag_in_frame", 12u + 4u * i + 6u <= len);
            CHECK("vlan_tag_bytes", dps_get_be16(f + 12 + 4 * i) == tpid
                                        && (dps_get_be16(f + 14 + 4 * i) | DPS_VLAN_CFI) == tci);
            tags++;
        }
    }
    CHECK("n_vlans", o->n_vlans == tags);
    /* The type after the tags (a tag type itself when the tag after it is cut short). */
    CHECK("eth_type_in_frame", 14u + 4u * tags <= len);
    CHECK("eth_type_bytes", type == ETH_NONE ? dps_get_be16(f + 12 + 4 * tags) < 0x600
                                             : dps_get_be16(f + 12 + 4 * tags) == type);

    /* MPLS: the outer label stack entry as the frame has it (none if cut short); no other type has one. */
    if (type == 0x8847 || type == 0x8848) {
        uint32_t lse = 0;
        if (14u + 4u * tags + 4u <= len)
            memcpy(&lse, f + 14 + 4 * tags, 4);
        CHECK("mpls_lse_bytes", k->mpls_lse == lse);
    } else {
        CHECK("mpls_lse_only_mpls", k->mpls_lse == 0);
    }

    int ipv4 = type == ETH_IPV4, ipv6 = type == ETH_IPV6, arp = type == ETH_ARP;
    if (!ipv4 && !ipv6 && !arp) {
        CHECK("non_l3_rest_zero", zero((const uint8_t *)k + offsetof(struct dps_flow_key, nw_src),
                                       offsetof(struct dps_flow_key, mpls_lse) - offsetof(struct dps_flow_key, nw_src)));
        CHECK("non_l3_no_ofs", o->l3 == DPS_OFS_NONE && o->l4 == DPS_OFS_NONE);
        return;
    }
    if (arp) {
        CHECK("arp_no_ip_fields", k->ipv6_label == 0 && k->nw_tos == 0 && k->nw_ttl == 0 && k->nw_frag == 0);
        CHECK("arp_ipv4_width", zero(k->nw_src + 4, 12) && zero(k->nw_dst + 4, 12));
        CHECK("arp_no_l4", ZERO_FROM(k, tp_src) && o->l4 == DPS_OFS_NONE);
        if (o->l3 == DPS_OFS_NONE)
            CHECK("arp_invalid_rest_zero", ZERO_FROM(k, nw_src));
        else {
            const uint8_t *p = f + o->l3;
            CHECK("arp_in_frame", o->l3 + 28u <= len);
            CHECK("arp_bytes", memcmp(k->arp_sha, p + 8, 6) == 0 && memcmp(k->nw_src, p + 14, 4) == 0
                                   && memcmp(k->arp_tha, p + 18, 6) == 0 && memcmp(k->nw_dst, p + 24, 4) == 0);
            CHECK("arp_op", k->nw_proto == (dps_get_be16(p + 6) <= 0xff ? dps_get_be16(p + 6) : 0));
        }
        return;
    }

    /* IPv4 / IPv6. */
    CHECK("ip_no_arp_fields", (ZERO_MEMBER(k, arp_sha) && ZERO_MEMBER(k, arp_tha))
                                  || (ipv6 && k->nw_proto == 58));
    CHECK("ip_frag_values", k->nw_frag == 0 || k->nw_frag == DPS_FRAG_ANY
                                || k->nw_frag == (DPS_FRAG_ANY | DPS_FRAG_LATER));
    if (ipv4) {
        CHECK("ipv4_no_label", k->ipv6_label == 0);
        CHECK("ipv4_addr_width", zero(k->nw_src + 4, 12) && zero(k->nw_dst + 4, 12));
        CHECK("ipv4_no_nd", ZERO_MEMBER(k, nd_target) && ZERO_MEMBER(k, arp_sha) && ZERO_MEMBER(k, arp_tha));
        uint32_t l3 = 14u + 4u * tags;
        const uint8_t *p = f + l3;
        int valid = l3 + 20u <= len && (p[0] >> 4) == 4 && (p[0] & 15) >= 5 && l3 + (p[0] & 15) * 4u <= len;
        if (valid)
            CHECK("ipv4_bytes", memcmp(k->nw_src, p + 12, 4) == 0 && memcmp(k->nw_dst, p + 16, 4) == 0
                                    && k->nw_tos == p[1] && k->nw_ttl == p[8] && k->nw_proto == p[9]);
        else
            CHECK("ipv4_invalid_rest_zero", ZERO_FROM(k, nw_src) && o->l4 == DPS_OFS_NONE);
    } else {
        CHECK("ipv6_label_20_bits", (k->ipv6_label & ~__builtin_bswap32(0xfffff)) == 0);
        uint32_t l3 = 14u + 4u * tags;
        const uint8_t *p = f + l3;
        if (l3 + 40u <= len && (p[0] >> 4) == 6)
            CHECK("ipv6_bytes", memcmp(k->nw_src, p + 8, 16) == 0 && memcmp(k->nw_dst, p + 24, 16) == 0
                                    && k->nw_ttl == p[7] && k->nw_tos == (uint8_t)(dps_get_be16(p) >> 4)
                                    && k->ipv6_label == __builtin_bswap32(
                                           (uint32_t)(p[1] & 15) << 16 | dps_get_be16(p + 2)));
        else
            CHECK("ipv6_invalid_rest_zero", ZERO_FROM(k, nw_src) && o->l4 == DPS_OFS_NONE);
    }

    /* L4: only for a protocol that has it, in its own IP version; none in later fragments. */
    uint16_t sp = be16(k->tp_src), dp = be16(k->tp_dst), flags = be16(k->tcp_flags);
    int icmp = (ipv4 && k->nw_proto == 1) || (ipv6 && k->nw_proto == 58);
    int ports = k->nw_proto == 6 || k->nw_proto == 17 || k->nw_proto == 132;
    CHECK("tp_only_for_l4_proto", (sp == 0 && dp == 0) || icmp || ports);
    CHECK("icmp_type_code_8_bits", !icmp || (sp <= 0xff && dp <= 0xff));
    CHECK("tcp_flags_only_tcp", flags == 0 || k->nw_proto == 6);
    CHECK("tcp_flags_12_bits", flags <= 0x0fff);
    CHECK("nd_only_for_ns_na", (ZERO_MEMBER(k, nd_target) && ZERO_MEMBER(k, arp_sha) && ZERO_MEMBER(k, arp_tha))
                                   || (ipv6 && k->nw_proto == 58 && (sp == 135 || sp == 136) && dp == 0));
    if (k->nw_frag & DPS_FRAG_LATER)
        CHECK("later_frag_no_l4", ZERO_FROM(k, tp_src) && o->l4 == DPS_OFS_NONE);
    if (o->l4 == DPS_OFS_NONE)
        CHECK("no_l4_ofs_no_l4", ZERO_FROM(k, tp_src));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        fuzz_invariants_init("FUZZ_PARSE_IGNORE");
        init = 1;
    }
    if (size > 65535)                   /* parse.c caps len at 65535 anyway */
        return 0;
    uint8_t *f = malloc(size);          /* exactly sized: ASan sees a read past the end */
    if (!f)
        return 0;
    memcpy(f, data, size);
    fuzz_invariants_input(f, size);
    uint32_t in_port = (uint32_t)size * 2654435761u ^ (size ? f[0] : 0x5a);

    struct dps_flow_key k, k2, k3;
    struct dps_offsets o, o2;
    memset(&k, 0xa5, sizeof k);         /* the parser must overwrite every byte */
    memset(&o, 0xa5, sizeof o);
    dps_parse_ofs(f, (uint32_t)size, in_port, &k, &o);
    check(f, (uint32_t)size, in_port, &k, &o);

    /* Deterministic, whatever was in the key before; dps_parse() gives the same key. */
    memset(&k2, 0x5a, sizeof k2);
    dps_parse_ofs(f, (uint32_t)size, in_port, &k2, &o2);
    CHECK("deterministic", memcmp(&k, &k2, sizeof k) == 0 && o.l3 == o2.l3 && o.l4 == o2.l4
                               && o.l4_end == o2.l4_end && o.n_vlans == o2.n_vlans);
    memset(&k3, 0xff, sizeof k3);
    dps_parse(f, (uint32_t)size, in_port, &k3);
    CHECK("dps_parse_same_key", memcmp(&k, &k3, sizeof k) == 0);

    free(f);
    return 0;
}
