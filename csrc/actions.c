/*
 * actions.c — the action executor's out-of-line half (the contract, and the loop that runs a
 * list, inline, are in actions.h): checking a list, masked set-field with incremental checksum
 * updates, the scans for what later actions change, the hash action, and dps_actions_execute,
 * the loop's out-of-line instance.  What needs the datapath goes through the caller's struct
 * dps_exec_ops.
 */
#include <stdio.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_hash_crc.h>
#include <rte_mbuf.h>

#include "actions.h"
#include "parse.h"
#include "util.h"

static const uint16_t set_size[] = {
    [DPS_SET_ETH] = 12, [DPS_SET_VLAN] = 2, [DPS_SET_IPV4] = 10,
    [DPS_SET_IPV6] = 38, [DPS_SET_TCP] = 4, [DPS_SET_UDP] = 4, [DPS_SET_SCTP] = 4,
    [DPS_SET_ICMP] = 2, [DPS_SET_ICMPV6] = 2, [DPS_SET_ARP] = 22, [DPS_SET_ND] = 28, [DPS_SET_MPLS] = 4,
};

int
dps_actions_validate(const uint8_t *a, uint32_t len, char *why, size_t n)
{
    uint32_t off = 0;
    while (off < len) {
        if (len - off < sizeof(struct dps_action)) {
            snprintf(why, n, "%u stray bytes at offset %u", len - off, off);
            return -1;
        }
        const struct dps_action *h = dps_act_at(a + off);
        if (h->len < 8 || h->len % 8 || h->len > len - off) {
            snprintf(why, n, "action at offset %u: length %u (must be 8.., a multiple of 8, within the list)",
                     off, h->len);
            return -1;
        }
        uint32_t plen = h->len - sizeof *h;
        switch (h->type) {
        case DPS_ACT_OUTPUT:
            if (h->arg >= DPS_MAX_PORTS) {
                snprintf(why, n, "output to port %u: ports go up to %d", h->arg, DPS_MAX_PORTS - 1);
                return -1;
            }
            break;
        case DPS_ACT_PUSH_VLAN:
            if ((h->arg >> 16) != 0x8100 && (h->arg >> 16) != 0x88a8) {
                snprintf(why, n, "push_vlan with TPID 0x%04x", h->arg >> 16);
                return -1;
            }
            break;
        case DPS_ACT_PUSH_MPLS: {
            uint16_t t = 0;
            if (plen == 8)
                memcpy(&t, a + off + sizeof *h, 2);
            if (t != 0x8847 && t != 0x8848) {
                snprintf(why, n, "push_mpls with %u payload bytes, ethertype 0x%04x", plen, t);
                return -1;
            }
            break;
        }
        case DPS_ACT_POP_MPLS:
            if (h->arg & ~(0xffffu | DPS_POP_MPLS_STACK)) {
                snprintf(why, n, "pop_mpls to ethertype 0x%x", h->arg);
                return -1;
            }
            break;
        case DPS_ACT_POP_VLAN: case DPS_ACT_HASH: case DPS_ACT_RECIRC: case DPS_ACT_TRUNCATE:
            break;
        case DPS_ACT_METER:
            if (h->arg >= DPS_MAX_METERS) {
                snprintf(why, n, "meter %u: ids go up to %d", h->arg, DPS_MAX_METERS - 1);
                return -1;
            }
            break;
        case DPS_ACT_SET_MASKED:
            if (h->arg == 0 || h->arg >= RTE_DIM(set_size) || !set_size[h->arg]
                || plen != RTE_ALIGN_CEIL(2u * set_size[h->arg], 8u)) {
                snprintf(why, n, "set_masked of kind %u with %u payload bytes", h->arg, plen);
                return -1;
            }
            break;
        case DPS_ACT_USERSPACE:
            if (plen < 8) {
                snprintf(why, n, "userspace action without its cookie");
                return -1;
            }
            break;
        case DPS_ACT_SAMPLE: case DPS_ACT_CLONE:
            if (dps_actions_validate(a + off + sizeof *h, plen, why, n) < 0)
                return -1;
            break;
        case DPS_ACT_CHECK_PKT_LEN: {
            uint32_t gt = UINT32_MAX;
            if (plen >= 8)
                memcpy(&gt, a + off + sizeof *h, 4);
            if (gt > plen - 8 || gt % 8) {
                snprintf(why, n, "check_pkt_len with %u payload bytes, its first list %u", plen, gt);
                return -1;
            }
            if (dps_actions_validate(a + off + sizeof *h + 8, gt, why, n) < 0
                || dps_actions_validate(a + off + sizeof *h + 8 + gt, plen - 8 - gt, why, n) < 0)
                return -1;
            break;
        }
        default:
            snprintf(why, n, "unknown action type %u at offset %u", h->type, off);
            return -1;
        }
        off += h->len;
    }
    return 0;
}

bool
dps_actions_need_key(const uint8_t *a, uint32_t len)
{
    for (uint32_t off = 0; off < len; off += dps_act_at(a + off)->len) {
        const struct dps_action *h = dps_act_at(a + off);
        if (h->type == DPS_ACT_HASH || h->type == DPS_ACT_USERSPACE || h->type == DPS_ACT_RECIRC)
            return true;
        if ((h->type == DPS_ACT_CLONE || h->type == DPS_ACT_SAMPLE)
            && dps_actions_need_key(a + off + sizeof *h, h->len - (uint32_t)sizeof *h))
            return true;
        if (h->type == DPS_ACT_CHECK_PKT_LEN      /* its two lists, back to back, after 8 bytes */
            && dps_actions_need_key(a + off + sizeof *h + 8, h->len - (uint32_t)sizeof *h - 8))
            return true;
    }
    return false;
}

/* Write VALUE under MASK over FIELD (n bytes); the old bytes go to OLD. */
static inline void
masked_write(uint8_t *field, const uint8_t *value, const uint8_t *mask, unsigned n, uint8_t *old)
{
    memcpy(old, field, n);
    for (unsigned i = 0; i < n; i++)
        field[i] = (uint8_t)((field[i] & ~mask[i]) | (value[i] & mask[i]));
}

/* The L4 checksum over a pseudo-header, if the frame has one: TCP's or UDP's, or ICMPv6's (an
 * IPv6 frame's protocol 58; under IPv4, 58 has no checksum of ours to fix). */
static uint8_t *
l4_csum(uint8_t *f, const struct dps_offsets *o, uint8_t proto, bool v6, bool later_frag)
{
    if (o->l4 == DPS_OFS_NONE || later_frag)
        return NULL;
    uint32_t room = o->l4_end > o->l4 ? o->l4_end - o->l4 : 0;
    if (proto == 6 && room >= 20)
        return f + o->l4 + 16;
    if (proto == 17 && room >= 8)
        return f + o->l4 + 6;
    if (proto == 58 && v6 && room >= 4)
        return f + o->l4 + 2;
    return NULL;
}

/* SCTP's CRC32c after the first 4 bytes of an N-byte packet went from OLD to NEW.  The CRC is
 * linear: two packets' CRCs differ by the CRC (from a zero register) of their difference, here
 * the 4 changed bytes and N - 4 zero bytes.  So a wrong checksum stays as wrong as it was (as
 * Open vSwitch keeps it), and the payload is not read. */
static void
sctp_csum_replace(uint8_t *csum, const uint8_t *old, const uint8_t *new, uint32_t n)
{
    uint32_t a, b, s;
    memcpy(&a, old, 4);
    memcpy(&b, new, 4);
    uint32_t c = rte_hash_crc_4byte(a ^ b, 0);
    uint32_t left = n - 4;
    for (; left >= 8; left -= 8)
        c = rte_hash_crc_8byte(0, c);
    if (left >= 4) {
        c = rte_hash_crc_4byte(0, c);
        left -= 4;
    }
    if (left >= 2) {
        c = rte_hash_crc_2byte(0, c);
        left -= 2;
    }
    if (left)
        c = rte_hash_crc_1byte(0, c);
    memcpy(&s, csum, 4);
    s ^= rte_cpu_to_le_32(c);             /* the CRC goes on the wire least significant byte first */
    memcpy(csum, &s, 4);
}

static void
l4_csum_replace(uint8_t *c, uint8_t proto, bool v4, const void *old, const void *new, unsigned n)
{
    if (!c || (proto == 17 && v4 && dps_get16(c) == 0))
        return;                            /* none, or UDP over IPv4 without a checksum */
    dps_csum_replace(c, old, new, n);
    if (proto == 17 && dps_get16(c) == 0)
        dps_put16(c, 0xffff);
}

/* Where the ethertype after the frame's VLAN tags (at most two, as the parser reads them) is,
 * or 0 if the frame is too short for it. */
static uint32_t
l2_type_ofs(const uint8_t *f, uint32_t len)
{
    uint32_t ofs = 12;
    for (int i = 0; i < 2 && len >= ofs + 6; i++) {
        uint16_t t = dps_get_be16(f + ofs);
        if (t != 0x8100 && t != 0x88a8)
            break;
        ofs += 4;
    }
    return len >= ofs + 2 ? ofs : 0;
}

static bool
is_mpls_type(uint16_t t)
{
    return t == 0x8847 || t == 0x8848;
}

bool
dps_push_mpls(struct rte_mbuf *m, uint16_t ethertype, uint32_t lse)
{
    uint32_t ofs = l2_type_ofs(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m));
    if (!ofs)
        return false;
    uint8_t *f = (uint8_t *)rte_pktmbuf_prepend(m, 4);
    if (!f)
        return false;
    memmove(f, f + 4, ofs);                    /* addresses and tags; the old ethertype is overwritten */
    uint16_t t = rte_cpu_to_be_16(ethertype);
    uint32_t l = rte_cpu_to_be_32(lse);
    memcpy(f + ofs, &t, 2);
    memcpy(f + ofs + 2, &l, 4);
    return true;
}

void
dps_pop_mpls(struct rte_mbuf *m, uint32_t arg)
{
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    uint32_t len = rte_pktmbuf_data_len(m);
    uint32_t ofs = l2_type_ofs(f, len);
    if (!ofs || len < ofs + 6 || !is_mpls_type(dps_get_be16(f + ofs)))
        return;
    uint32_t n = 1;                            /* entries removed */
    if (arg & DPS_POP_MPLS_STACK)
        while (n < 3 && !(f[ofs + 4 * n] & 1) && len >= ofs + 6 + 4 * n)   /* BoS: bit 8 of the entry */
            n++;
    memmove(f + 4 * n, f, ofs);
    f = (uint8_t *)rte_pktmbuf_adj(m, (uint16_t)(4 * n));
    uint16_t t = rte_cpu_to_be_16((uint16_t)arg);
    memcpy(f + ofs, &t, 2);
}

bool
dps_set_masked(struct rte_mbuf *m, uint32_t kind, const uint8_t *val)
{
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    uint32_t len = rte_pktmbuf_data_len(m);
    const uint8_t *mask = val + set_size[kind];
    struct dps_flow_key k;
    struct dps_offsets o;
    uint8_t old[40];

    if (kind == DPS_SET_ETH) {
        if (len < 12)
            return false;
        masked_write(f, val, mask, 12, old);
        return true;
    }
    if (kind == DPS_SET_MPLS) {
        uint32_t ofs = l2_type_ofs(f, len);
        if (!ofs || len < ofs + 6 || !is_mpls_type(dps_get_be16(f + ofs)))
            return false;
        masked_write(f + ofs + 2, val, mask, 4, old);
        return true;
    }
    dps_parse_ofs(f, len, 0, &k, &o);
    if (kind == DPS_SET_VLAN) {
        if (!o.n_vlans)
            return false;
        masked_write(f + 14, val, mask, 2, old);
        return true;
    }
    uint16_t eth_type = rte_be_to_cpu_16(k.eth_type);
    bool later = k.nw_frag & DPS_FRAG_LATER;
    if (kind == DPS_SET_IPV4) {
        if (eth_type != 0x0800 || o.l3 == DPS_OFS_NONE)
            return false;
        uint8_t *ip = f + o.l3;
        uint8_t *ipc = ip + 10;
        uint8_t *l4c = l4_csum(f, &o, k.nw_proto, false, later);
        masked_write(ip + 12, val, mask, 8, old);                   /* src, dst */
        dps_csum_replace(ipc, old, ip + 12, 8);
        l4_csum_replace(l4c, k.nw_proto, true, old, ip + 12, 8);    /* the pseudo-header */
        uint8_t w_old[2] = { ip[0], ip[1] };                        /* tos with version/ihl */
        masked_write(ip + 1, val + 8, mask + 8, 1, old);
        dps_csum_replace(ipc, w_old, ip, 2);
        uint8_t t_old[2] = { ip[8], ip[9] };                        /* ttl with protocol */
        masked_write(ip + 8, val + 9, mask + 9, 1, old);
        dps_csum_replace(ipc, t_old, ip + 8, 2);
        return true;
    }
    if (kind == DPS_SET_IPV6) {
        if (eth_type != 0x86dd || o.l3 == DPS_OFS_NONE)
            return false;
        uint8_t *ip = f + o.l3;
        uint8_t *l4c = l4_csum(f, &o, k.nw_proto, true, later);
        masked_write(ip + 8, val, mask, 32, old);                   /* src, dst */
        l4_csum_replace(l4c, k.nw_proto, false, old, ip + 8, 32);  /* the pseudo-header */
        uint32_t vtcfl, lab, lmask;
        memcpy(&vtcfl, ip, 4);
        memcpy(&lab, val + 32, 4);
        memcpy(&lmask, mask + 32, 4);
        vtcfl = rte_be_to_cpu_32(vtcfl);
        uint32_t l = rte_be_to_cpu_32(lab) & 0xfffff, lm = rte_be_to_cpu_32(lmask) & 0xfffff;
        uint32_t tc = val[36], tm = mask[36];
        vtcfl = (vtcfl & ~lm) | (l & lm);
        vtcfl = (vtcfl & ~(tm << 20)) | ((tc & tm) << 20);
        vtcfl = rte_cpu_to_be_32(vtcfl);
        memcpy(ip, &vtcfl, 4);
        ip[7] = (uint8_t)((ip[7] & ~mask[37]) | (val[37] & mask[37]));
        return true;
    }
    if (kind == DPS_SET_ARP) {
        if (eth_type != 0x0806 || o.l3 == DPS_OFS_NONE)     /* the parser found 28 bytes of it */
            return false;
        masked_write(f + o.l3 + 6, val, mask, 22, old);    /* op sha spa tha tpa */
        return true;
    }
    if (o.l4 == DPS_OFS_NONE || later)
        return false;
    uint8_t *l4 = f + o.l4;
    uint32_t room = o.l4_end > o.l4 ? o.l4_end - o.l4 : 0;
    if (kind == DPS_SET_TCP || kind == DPS_SET_UDP) {
        uint8_t want = kind == DPS_SET_TCP ? 6 : 17;
        uint8_t *c = k.nw_proto == want ? l4_csum(f, &o, want, eth_type == 0x86dd, later) : NULL;
        if (!c)
            return false;
        masked_write(l4, val, mask, 4, old);
        l4_csum_replace(c, want, eth_type == 0x0800, old, l4, 4);
        return true;
    }
    if (kind == DPS_SET_SCTP) {
        if (k.nw_proto != 132 || room < 12)           /* first fragments too, as OVS */
            return false;
        masked_write(l4, val, mask, 4, old);
        sctp_csum_replace(l4 + 8, old, l4, room);
        return true;
    }
    /* ICMPv4, ICMPv6: type code checksum; the pseudo-header (ICMPv6) does not change here. */
    bool v6 = kind != DPS_SET_ICMP;
    if (eth_type != (v6 ? 0x86dd : 0x0800) || k.nw_proto != (v6 ? 58 : 1) || room < 4)
        return false;
    uint8_t *c = l4 + 2;
    if (kind != DPS_SET_ND) {
        masked_write(l4, val, mask, 2, old);
        dps_csum_replace(c, old, l4, 2);
        if (!v6 && dps_get16(c) == 0) {
            /* One's complement has two zeros, and the update above may land on the wrong one:
             * a message of zero bytes only sums to +0, so its checksum is 0xffff.  (ICMPv6 sums
             * a pseudo-header too, which is never zero.) */
            uint32_t i = 4;
            while (i < room && !l4[i])
                i++;
            if (i == room && !l4[0] && !l4[1])
                dps_put16(c, 0xffff);
        }
        return true;
    }
    if (room < 24)
        return false;
    masked_write(l4 + 8, val, mask, 16, old);             /* the target */
    dps_csum_replace(c, old, l4 + 8, 16);
    /* The options, walked as the parser walks them; the first link-layer address one is written
     * if it is of the kind the value is for (as Open vSwitch: a message has one of them). */
    for (uint32_t i = 24; i + 8 <= room;) {
        uint32_t olen = l4[i + 1] * 8u;
        if (olen == 0 || i + olen > room)
            break;
        if ((l4[i] == 1 || l4[i] == 2) && olen == 8) {
            unsigned at = l4[i] == 1 ? 16 : 22;          /* sll, tll */
            masked_write(l4 + i + 2, val + at, mask + at, 6, old);
            dps_csum_replace(c, old, l4 + i + 2, 6);
            break;
        }
        i += olen;
    }
    return true;
}

/* Whether action H might change the frame, or hand it on to be changed (the slow path, a
 * second pass): then a frame already queued elsewhere must be a copy. */
static inline bool
action_modifies(const struct dps_action *h)
{
    switch (h->type) {
    case DPS_ACT_OUTPUT: case DPS_ACT_METER: case DPS_ACT_HASH:
        return false;
    case DPS_ACT_CLONE: case DPS_ACT_SAMPLE:
        return dps_actions_modify((const uint8_t *)(h + 1), h->len - (uint32_t)sizeof *h);
    default:
        return true;
    }
}

/* dps_actions_modifying_end(a, len) != 0, but stopping at the first modifying action. */
bool
dps_actions_modify(const uint8_t *a, uint32_t len)
{
    for (uint32_t off = 0; off < len; off += dps_act_at(a + off)->len)
        if (action_modifies(dps_act_at(a + off)))
            return true;
    return false;
}

uint32_t
dps_actions_modifying_end(const uint8_t *a, uint32_t len)
{
    uint32_t end = 0;
    for (uint32_t off = 0; off < len;) {
        const struct dps_action *h = dps_act_at(a + off);
        off += h->len;
        if (action_modifies(h))
            end = off;
    }
    return end;
}

void
dps_actions_execute(const struct dps_exec_ops *ops, void *ctx, struct rte_mbuf *m, struct dps_flow_key *key,
                    const uint8_t *a, uint32_t len)
{
    dps_actions_run(ops, ctx, m, key, a, len);
}
