/*
 * dpdkswitch.h — the one boundary between the C datapath and Python.
 *
 * Everything Python may call or view is declared here and nowhere else.  The meson build
 * feeds this file, less its preprocessor lines, to cffi's cdef() and compiles the result in
 * API (out-of-line) mode, so C and Python can never disagree on a signature.  Structures
 * Python views as numpy arrays in place (dps_pmd_stats) have their dtype checked against the
 * compiled object's DWARF by tests/test_abi.py.  Keep this file free of macros other than
 * plain integer #defines and of attributes: cdef() must parse it.
 *
 * Contract, for every function below unless it says otherwise:
 *   - Caller: the control thread (Python's main thread, which is EAL's main lcore), one call
 *     at a time.  Nothing here is safe to call from two threads at once.  PMD threads never
 *     call into this API; they are started and stopped by it.
 *   - Errors: a negative errno is returned (or NULL), and dps_last_error() holds one line
 *     saying what failed and why.
 *   - Cost: control-plane calls (port add/remove, forwarding changes) publish a new
 *     forwarding snapshot and wait one RCU grace period (every PMD finishes the iteration it
 *     is in: microseconds).  Reading counters costs nothing: they are shared memory.
 *   - Cffi releases the GIL for every call.
 */
#ifndef DPDKSWITCH_H
#define DPDKSWITCH_H 1

#include <stddef.h>
#include <stdint.h>

#define DPS_MAX_PORTS 256         /* datapath port numbers are 0 .. DPS_MAX_PORTS-1 */
#define DPS_MAX_PMDS 32           /* PMD threads per datapath */
#define DPS_MAX_RXQ_PER_PMD 64    /* rx queues one PMD polls */
#define DPS_BURST 32              /* rx burst and tx batch size */
#define DPS_NAME_LEN 64
#define DPS_XSTAT_NAME_LEN 64

/* ---- The flow key ------------------------------------------------------------------------
 *
 * What the parser extracts from a frame, and what flows match on (with a mask of the same
 * layout).  Every multi-byte field is in network byte order, so a mask applies to the bytes as
 * they are and a set-field writes them back unchanged.  Fields a frame does not have are zero:
 * "absent" is told apart by eth_type, nw_proto and nw_frag, as in Open vSwitch.  The Python side
 * describes this layout once, in dpdkswitch/flowkey.py (tests/test_abi.py checks it against this
 * struct's DWARF), and each match field on it (offset, width, prerequisites) once, in
 * dpdkswitch/ofproto/fields.py.
 */
#define DPS_VLAN_CFI 0x1000           /* in vlan_tci (host order): a tag is present */
#define DPS_FRAG_ANY 1                /* nw_frag: the packet is a fragment */
#define DPS_FRAG_LATER 2              /* nw_frag: a fragment other than the first */

struct dps_flow_key {
    /* metadata (not from the frame) */
    uint32_t in_port;                 /* datapath port, host order */
    uint32_t recirc_id;               /* host order; 0 = first pass */
    uint32_t dp_hash;                 /* host order; set by the hash action */
    uint32_t pad0;
    /* L2 */
    uint8_t eth_dst[6];
    uint8_t eth_src[6];
    uint16_t eth_type;                /* the type after the VLAN tags (0x05ff for 802.2 frames) */
    uint16_t vlan_tci[2];             /* outer, inner: TCI | DPS_VLAN_CFI when the tag exists */
    uint16_t vlan_tpid[2];            /* 0x8100 or 0x88a8; 0 when absent */
    uint16_t pad1;
    /* L3: IPv4 (first 4 bytes of nw_src/nw_dst), IPv6, or ARP (spa/tpa) */
    uint8_t nw_src[16];
    uint8_t nw_dst[16];
    uint32_t ipv6_label;              /* 20 bits */
    uint8_t nw_proto;                 /* IP protocol / IPv6 next header after extensions; ARP op (low byte) */
    uint8_t nw_tos;                   /* DSCP << 2 | ECN */
    uint8_t nw_ttl;
    uint8_t nw_frag;                  /* DPS_FRAG_* */
    uint8_t arp_sha[6];               /* ARP sha, or ICMPv6 ND source link-layer address */
    uint8_t arp_tha[6];               /* ARP tha, or ICMPv6 ND target link-layer address */
    /* L4 */
    uint16_t tp_src;                  /* TCP/UDP/SCTP port; ICMP type (low byte) */
    uint16_t tp_dst;                  /* TCP/UDP/SCTP port; ICMP code (low byte) */
    uint16_t tcp_flags;               /* 12 bits */
    uint16_t pad2;
    uint8_t nd_target[16];            /* ICMPv6 neighbour solicitation/advertisement target */
    uint32_t mpls_lse;                /* the outer MPLS label stack entry (label 20, TC 3, BoS 1, TTL 8
                                       * bits), when eth_type is 0x8847/0x8848; then no L3 or L4 field
                                       * is parsed (as Open vSwitch: the payload is opaque) */
};

/* Parse FRAME (len bytes) received on IN_PORT into KEY.  Never reads past len: a truncated
 * or malformed frame is parsed up to its valid prefix, the rest left absent (zero).  Any
 * thread; costs tens of cycles. */
void dps_parse(const uint8_t *frame, uint32_t len, uint32_t in_port, struct dps_flow_key *key);

/* ---- EAL: process-global, started once ------------------------------------------------ */

/* The last error of the calling thread, one line; "" if none. */
const char *dps_last_error(void);

/* Start EAL with these arguments (argv[0] included).  Once per process: a second call
 * fails with -EALREADY.  The calling thread becomes the main lcore. */
int dps_eal_init(int argc, char **argv);
int dps_eal_initialized(void);
/* EAL's lcore ids that are enabled, main lcore first; returns how many (at most n). */
unsigned dps_eal_lcores(unsigned *out, unsigned n);
unsigned dps_eal_main_lcore(void);
/* "DPDK 22.11.x": the library this was built and runs with. */
const char *dps_dpdk_version(void);
/* Whether EAL runs on hugepages (0 for --no-huge). */
int dps_eal_has_hugepages(void);

/* ---- DPDK's own log --------------------------------------------------------------------
 *
 * dps_log_capture() points DPDK's log stream (rte_openlog_stream) at a bounded buffer of
 * lines, so EAL's, the libraries' and the drivers' messages reach Python's logging instead of
 * stdout.  Any thread may log (EAL's interrupt thread, PMD threads): a line is copied into
 * the buffer under a spinlock held for that copy only, never waiting on Python; when the
 * buffer is full the line is dropped and counted.  The control thread drains it with
 * dps_log_take().  A line longer than DPS_LOG_LINE - 1 bytes is cut there.
 */
#define DPS_LOG_LINE 512
#define DPS_LOG_SLOTS 1024            /* lines the buffer holds */

struct dps_log_line {
    uint32_t level;                   /* DPDK's: 1 emergency .. 4 error, 5 warning, 6 notice,
                                       * 7 info, 8 debug; 0 if it came from no rte_log call */
    char text[DPS_LOG_LINE];          /* without its newline, NUL-terminated */
};

/* Send DPDK's log to the buffer.  Call before dps_eal_init, so EAL's own start-up lines are
 * caught; a second call is a no-op.  Process-global. */
int dps_log_capture(void);
/* Move up to N of the buffered lines, oldest first, to OUT; returns how many.  *DROPPED gets
 * the lines lost to a full buffer since the previous call.  Control thread; a memcpy a line. */
unsigned dps_log_take(struct dps_log_line *out, unsigned n, uint64_t *dropped);

/* ---- Datapath ------------------------------------------------------------------------- */

struct dps_dp;

struct dps_dp_params {
    uint32_t n_mbufs;        /* mbufs of the first mempool on each NUMA socket; 0 = 16384 */
    uint32_t mbuf_cache;     /* per-lcore mempool cache; 0 = 256 */
    int manual_clock;        /* 1: dps_clock_now() returns what dps_clock_set() gave */
    uint32_t flow_limit;     /* datapath flows at most; 0 = 200000 */
    uint32_t upcall_ring;    /* upcall ring slots, a power of two; 0 = 4096 */
    uint32_t emc_insert_inv_prob; /* exact-match cache insertion 1/N; 0 = never; default set by Python */
    uint32_t pad;
};

struct dps_dp *dps_dp_create(const char *name, const struct dps_dp_params *params);
/* Stops PMDs, removes every port, frees the mempools.  NULL is a no-op. */
void dps_dp_destroy(struct dps_dp *dp);

/* Nanoseconds on the datapath's clock: TSC-based, or the manual clock. */
uint64_t dps_clock_now(const struct dps_dp *dp);
void dps_clock_set(struct dps_dp *dp, uint64_t ns);

/* mbufs taken from all this datapath's mempools (in rx rings, in flight, leaked). */
uint64_t dps_mbufs_in_use(const struct dps_dp *dp);
uint64_t dps_mbufs_total(const struct dps_dp *dp);

/* ---- Ports ---------------------------------------------------------------------------- */

struct dps_port_params {
    const char *devargs;     /* PCI address or vdev devargs, e.g. "net_tap0,iface=sw-p1" */
    uint32_t dp_port;        /* the datapath port number to give it, < DPS_MAX_PORTS */
    uint16_t n_rxq;          /* 0 = 1 */
    uint16_t n_txq;          /* 0 = one per EAL lcore, capped by the device */
    uint16_t n_rxd;          /* 0 = 1024 */
    uint16_t n_txd;          /* 0 = 1024 */
    uint16_t mtu;            /* 0 = leave the device's */
    uint32_t extra_mbufs;    /* mbufs the device keeps beyond its rings (net_pcap's infinite_rx
                              * holds the whole file): the mempool is sized for them too */
};

/* Probe (hot-plug) the device, configure and start it, give its rx queues to PMDs. */
int dps_port_add(struct dps_dp *dp, const struct dps_port_params *params);
/* Stop polling it, wait for every PMD to let go, stop, close and unplug it. */
int dps_port_del(struct dps_dp *dp, uint32_t dp_port);
/* The dp_port numbers in use, ascending; returns how many (at most n). */
unsigned dps_port_list(const struct dps_dp *dp, uint32_t *out, unsigned n);

struct dps_port_info {
    char name[DPS_NAME_LEN];         /* ethdev name */
    char driver[DPS_NAME_LEN];
    uint16_t eth_port;               /* DPDK port id */
    int32_t socket;                  /* NUMA socket, -1 unknown */
    uint16_t n_rxq;
    uint16_t n_txq;
    uint16_t n_rxd;
    uint16_t n_txd;
    uint16_t mtu;
    uint8_t txq_shared;              /* 1: fewer tx queues than lcores, sent under a lock */
    uint8_t link_up;
    uint32_t link_speed;             /* Mbps */
    uint8_t mac[6];
};
int dps_port_info(const struct dps_dp *dp, uint32_t dp_port, struct dps_port_info *out);

struct dps_port_stats {
    uint64_t rx_packets, rx_bytes, rx_missed, rx_errors, rx_nombuf;   /* the device's */
    uint64_t tx_packets, tx_bytes, tx_errors;                         /* the device's */
    uint64_t tx_dropped;             /* ours: the device's tx queue was full */
};
int dps_port_stats(const struct dps_dp *dp, uint32_t dp_port, struct dps_port_stats *out);
/* The counters of N ports in one call, DP_PORTS[i] into OUT[i] (an array Python views with
 * numpy: a metrics scrape reads every port without a call per port or per counter).  A port
 * that is gone, or whose device cannot say, reads all zeros.  Returns how many were read.
 * Control thread; costs one rte_eth_stats_get per port. */
int dps_port_stats_many(const struct dps_dp *dp, const uint32_t *dp_ports, unsigned n,
                        struct dps_port_stats *out);

struct dps_xstat {
    char name[DPS_XSTAT_NAME_LEN];
    uint64_t value;
};
/* Fills up to n; returns how many the device has (call again with more room if larger). */
int dps_port_xstats(const struct dps_dp *dp, uint32_t dp_port, struct dps_xstat *out, unsigned n);

/* ---- Test ports: an ethdev on rings the datapath owns --------------------------------- */

/* Add a net_ring ethdev named NAME as dp_port, with n_queues rx and tx rings.  Frames are
 * injected into its rx rings and read from its tx rings by the two calls below. */
int dps_testport_add(struct dps_dp *dp, const char *name, uint32_t dp_port, uint16_t n_queues);
/* Copy n frames into mbufs and put them on rx ring QUEUE.  FRAMES holds them back to back,
 * LENS their lengths.  Returns how many were queued (fewer if the ring or pool is full). */
int dps_testport_inject(struct dps_dp *dp, uint32_t dp_port, uint16_t queue,
                        const uint8_t *frames, const uint32_t *lens, unsigned n);
/* Take up to max frames sent to the port (all tx rings), copy them back to back into BUF
 * (buflen bytes) with their lengths in LENS, free the mbufs.  Returns how many. */
int dps_testport_drain(struct dps_dp *dp, uint32_t dp_port, uint8_t *buf, size_t buflen,
                       uint32_t *lens, unsigned max);

/* ---- Datapath actions ------------------------------------------------------------------
 *
 * An action list is a sequence of struct dps_action, each followed by its payload, each
 * `len` bytes in all (header included), a multiple of 8.  An empty list drops.  Nested lists
 * (sample, clone) are the payload.  Python builds them (dpdkswitch/datapath/odp.py); the
 * datapath checks a list once when it is installed and never again.
 */
struct dps_action {
    uint16_t type;                    /* DPS_ACT_* */
    uint16_t len;                     /* bytes, header included, multiple of 8 */
    uint32_t arg;
};
#define DPS_ACT_OUTPUT 1              /* arg: datapath port */
#define DPS_ACT_PUSH_VLAN 2           /* arg: tpid << 16 | tci (host order) */
#define DPS_ACT_POP_VLAN 3
#define DPS_ACT_SET_MASKED 4          /* arg: DPS_SET_*; payload: value bytes, then mask bytes */
#define DPS_ACT_USERSPACE 5           /* to the slow path; payload: uint64 cookie */
#define DPS_ACT_SAMPLE 6              /* arg: probability, of UINT32_MAX; payload: actions */
#define DPS_ACT_CLONE 7               /* payload: actions run on a copy */
#define DPS_ACT_HASH 8                /* arg: basis; dp_hash = hash of the 5-tuple */
#define DPS_ACT_RECIRC 9              /* arg: recirc_id; look the frame up again */
#define DPS_ACT_METER 10              /* arg: meter id */
#define DPS_ACT_TRUNCATE 11           /* arg: max frame length from here on */
/* push_mpls inserts the LSE after the VLAN tags (as Open vSwitch's) and sets the frame's
 * ethertype; pop_mpls removes the outer LSE of an MPLS frame (others are left alone), or with
 * DPS_POP_MPLS_STACK the entries down to the bottom of the stack, three at most (Open vSwitch's
 * translation pops every entry its flow holds when the ethertype after the pop is not MPLS). */
#define DPS_POP_MPLS_STACK 65536           /* 1 << 16 */
#define DPS_ACT_PUSH_MPLS 12          /* arg: LSE (host order); payload: uint16 ethertype (host order), 6 zeros */
#define DPS_ACT_POP_MPLS 13           /* arg: the ethertype (host order) after the pop | DPS_POP_MPLS_STACK */
/* check_pkt_len runs one of two nested lists on the frame: the first if the frame is longer
 * than arg bytes, else the second (Open vSwitch's check_pkt_len, for check_pkt_larger).  Its
 * payload: uint32 length of the first list (host order), 4 zeros, the first list, the second. */
#define DPS_ACT_CHECK_PKT_LEN 14      /* arg: length; payload: see above */

/* What DPS_ACT_SET_MASKED writes: value and mask structs of these sizes, network order. */
#define DPS_SET_ETH 1                 /* 12: dst[6] src[6] */
#define DPS_SET_VLAN 2                /* 2: outer tag's TCI (PCP, DEI, VID: the bits under the mask) */
#define DPS_SET_IPV4 3                /* 10: src[4] dst[4] tos ttl; checksums fixed */
#define DPS_SET_IPV6 4                /* 38: src[16] dst[16] label[4] tclass hlimit */
#define DPS_SET_TCP 5                 /* 4: src[2] dst[2]; checksum fixed */
#define DPS_SET_UDP 6                 /* 4: src[2] dst[2]; checksum fixed */
#define DPS_SET_SCTP 7                /* 4: src[2] dst[2]; CRC32c adjusted (see below) */
#define DPS_SET_ICMP 8                /* 2: type code (ICMPv4); checksum fixed */
#define DPS_SET_ICMPV6 9              /* 2: type code; checksum fixed */
#define DPS_SET_ARP 10                /* 22: op[2] sha[6] spa[4] tha[6] tpa[4], the frame's own layout */
#define DPS_SET_ND 11                 /* 28: target[16] sll[6] tll[6]; checksum fixed (see below) */
#define DPS_SET_MPLS 12               /* 4: the outer MPLS LSE */
/* As Open vSwitch does them: SCTP's CRC32c changes by exactly the ports' share, so a wrong one
 * stays wrong; a fragment's ports are left alone (its CRC covers more than the fragment).
 * ARP: only the Ethernet/IPv4 ARP the parser reads.  ND: any ICMPv6 message of 24 bytes or more
 * (translation emits it for neighbour solicitations and advertisements); sll and tll go into the
 * first link-layer address option only if it is of that kind, and nowhere if there is none. */

#define DPS_MAX_METERS 4096
#define DPS_METER_PKTPS 1             /* rate in packets per second, else kbit/s */
struct dps_meter_band {
    uint32_t rate;
    uint32_t burst;                   /* bucket size, same unit; 0 = rate / 10 (100 ms) */
};
/* Set (or with n_bands 0, delete) meter ID: frames over the lowest band's rate are dropped. */
int dps_meter_set(struct dps_dp *dp, uint32_t id, uint32_t flags, const struct dps_meter_band *bands,
                  unsigned n_bands);
int dps_meter_stats(const struct dps_dp *dp, uint32_t id, uint64_t *packets, uint64_t *dropped);

/* ---- Datapath flows ---------------------------------------------------------------------
 *
 * A flow is (key, mask) → actions, named by a 128-bit UFID the slow path chooses.  Flows live
 * in one table all PMDs read without locks: the control thread is the only writer, and
 * deleted or replaced state is freed only after an RCU grace period.  A put is visible to
 * every PMD when the call returns; a delete, likewise (and no frame sees a half-made change:
 * actions are swapped whole).  Per-flow counters are kept per PMD and summed on read.
 */
struct dps_ufid {
    uint64_t lo, hi;
};
#define DPS_FLOW_CREATE 1             /* fail with -EEXIST if the UFID exists */
#define DPS_FLOW_MODIFY 2             /* fail with -ENOENT unless it exists; replace actions */
#define DPS_FLOW_RESET_STATS 4

struct dps_flow_stats {
    uint64_t packets;
    uint64_t bytes;
    uint64_t used_ns;                 /* datapath clock at the last hit; 0 never */
    uint16_t tcp_flags;               /* OR of the TCP flags seen (host order) */
    uint16_t pad[3];
};

struct dps_flow_put {
    struct dps_ufid ufid;
    const struct dps_flow_key *key;
    const struct dps_flow_key *mask;
    const uint8_t *actions;
    uint32_t actions_len;
    uint32_t flags;                   /* DPS_FLOW_* (neither CREATE nor MODIFY: either) */
    int32_t result;                   /* out: 0 or -errno */
    uint32_t pad;
};
/* Install a batch; each put's result says how it went.  Returns how many succeeded. */
int dps_flow_put_batch(struct dps_dp *dp, struct dps_flow_put *puts, unsigned n);
/* The same batch packed, one call for a whole upcall batch or revalidator pass: N UFIDs, N keys
 * and N masks back to back, every put's actions back to back in ACTIONS with put i's from
 * ACTIONS_OFS[i] to ACTIONS_OFS[i + 1]; FLAGS for every put; RESULTS[i]: 0 or -errno.  The
 * datapath copies what it keeps.  Returns how many succeeded. */
int dps_flow_put_packed(struct dps_dp *dp, unsigned n, const struct dps_ufid *ufids, const uint8_t *keys,
                        const uint8_t *masks, const uint8_t *actions, const uint32_t *actions_ofs,
                        uint32_t flags, int32_t *results);
/* The actions of N existing flows (their UFIDS) become ACTIONS (checked once; each flow gets its
 * own copy), as a modify put of each would make them: one call for the megaflows of one rule
 * after a flow-mod (the revalidator).  RESULTS[i]: 0 or -errno (-ENOENT: no such flow).  Returns
 * how many changed.  The control thread (the datapath's writer). */
int dps_flow_set_actions(struct dps_dp *dp, unsigned n, const struct dps_ufid *ufids, const uint8_t *actions,
                         uint32_t actions_len, int32_t *results);
/* Delete flows; their final counters into STATS and whether each existed into FOUND (either may
 * be NULL).  Returns how many existed. */
int dps_flow_del_batch(struct dps_dp *dp, const struct dps_ufid *ufids, unsigned n,
                       struct dps_flow_stats *stats, uint8_t *found);
/* One flow: key, mask, counters, and its actions into ACTIONS (room *actions_len, set to
 * the length; -ENOSPC if it does not fit). */
int dps_flow_get(const struct dps_dp *dp, const struct dps_ufid *ufid, struct dps_flow_key *key,
                 struct dps_flow_key *mask, struct dps_flow_stats *stats, uint8_t *actions,
                 uint32_t *actions_len);
struct dps_flow_dump {
    struct dps_ufid ufid;
    struct dps_flow_key key;
    struct dps_flow_key mask;
    struct dps_flow_stats stats;
    uint32_t actions_ofs;             /* into the dump's action buffer */
    uint32_t actions_len;
};
/* Up to n flows from *cursor on (start at 0), actions packed into ACTBUF.  Returns how many;
 * *cursor is where to go on, UINT32_MAX at the end. */
int dps_flow_dump(const struct dps_dp *dp, uint32_t *cursor, struct dps_flow_dump *out, unsigned n,
                  uint8_t *actbuf, uint32_t actbuf_len);
/* The revalidator's stats pass, incremental: from *cursor on, up to n flows whose packet count
 * changed since this function last reported them, or whose last hit (or put, if never hit) is
 * before IDLE_BEFORE_NS on the datapath clock (0: none is idle).  Counters as dps_flow_dump's.
 * Control thread; O(flows) in C, but only what changed crosses to Python.  *cursor as for
 * dps_flow_dump. */
struct dps_flow_delta {
    struct dps_ufid ufid;
    struct dps_flow_stats stats;
    uint64_t created_ns;
};
int dps_flow_stats_changed(struct dps_dp *dp, uint32_t *cursor, uint64_t idle_before_ns,
                           struct dps_flow_delta *out, unsigned n);
int dps_flow_flush(struct dps_dp *dp);
unsigned dps_flow_count(const struct dps_dp *dp);
unsigned dps_subtable_count(const struct dps_dp *dp);
/* Megaflows off: every flow put from now on matches every key field exactly (its mask is
 * ignored); existing flows are flushed.  On again: masks apply. */
int dps_megaflows_set(struct dps_dp *dp, int enabled);
void dps_emc_insert_prob_set(struct dps_dp *dp, uint32_t inv_prob);

/* ---- Misses and packets to and from the slow path ---------------------------------------
 *
 * A miss (or a userspace action) puts the frame, by reference, on the upcall ring with its
 * key.  The PMD never blocks: a full ring, or a port over its fair share of the ring, drops
 * the frame and counts it as lost.  While a flow's miss is in flight, its later frames are
 * parked in the PMD (counted as dups) and looked up again once flows change.  The ring's
 * consumer is the control thread; an eventfd wakes it.
 */
#define DPS_UPCALL_MISS 1
#define DPS_UPCALL_ACTION 2           /* a userspace action; cookie set */
/* A userspace action whose cookie has this bit carries a control protocol's frame (a BPDU,
 * an LACPDU, BFD, CFM: the slow path's process_special megaflows).  Those go on a ring of
 * their own (DPS_CONTROL_RING slots) that no port's share counts and that dps_upcall_recv
 * drains first, so a miss storm filling the main ring cannot starve them. */
#define DPS_UPCALL_CONTROL 9223372036854775808ULL   /* 1 << 63 */
#define DPS_CONTROL_RING 512
/* A userspace action whose cookie has this bit is a sample (IPFIX's; sFlow's go to the sample
 * rings below instead) that may wait:
 * it wakes the slow path only once DPS_LAZY_WAKE upcalls wait in the ring (a miss or any other
 * upcall wakes it at once, as before), and dps_upcall_arm does not count it below that, so
 * samples are taken in batches, not one wake-up each.  The slow path takes what waits at its
 * periodic pass at the latest (dps_upcall_count). */
#define DPS_UPCALL_LAZY 576460752303423488ULL       /* 1 << 59 */
#define DPS_LAZY_WAKE 64
struct dps_upcall {
    void *packet;                     /* a reference: execute or free it, exactly once */
    const uint8_t *data;              /* the frame, valid until then */
    uint32_t len;
    uint32_t type;                    /* DPS_UPCALL_* */
    uint64_t cookie;
    struct dps_flow_key key;
};

/* ---- sFlow samples -----------------------------------------------------------------------
 *
 * A userspace action whose cookie has DPS_UPCALL_SFLOW and not DPS_UPCALL_CONTROL (sFlow's
 * sample; the cookie's low 32 bits are the output ifIndex) is not an upcall: the PMD copies the frame's first
 * DPS_SFLOW_HEADER_MAX bytes (fewer if it is shorter), its length, its input port and the
 * cookie into a record of its own sample ring (DPS_SFLOW_RING records; one producer, that PMD,
 * one consumer, the control thread; no lock, no mbuf held), counts it in its sflow_samples,
 * and lets the frame go.  A full ring drops the sample and counts it in sflow_lost: the PMD
 * never waits.  A ring holding DPS_SFLOW_WAKE records wakes the control thread through the
 * upcall eventfd; dps_upcall_arm and dps_upcall_count count the records waiting (arm: once
 * DPS_SFLOW_WAKE of them do), so the periodic pass takes the rest.  The sampling decision
 * itself (the sample action ahead of it) is a geometric countdown per PMD and probability:
 * one random draw per sample, not per frame.
 */
#define DPS_UPCALL_SFLOW 4611686018427387904ULL     /* 1 << 62 */
#define DPS_SFLOW_RING 16384
#define DPS_SFLOW_HEADER_MAX 256
#define DPS_SFLOW_WAKE 2048
/* The datagrams of one sFlow agent (a bridge's) are built and sent here: the flow samples
 * dps_sflow_export encodes and the counter samples the slow path hands over (dps_sflow_add)
 * wait in PENDING, an sFlow v5 datagram's samples, until the next would take the datagram past
 * DPS_SFLOW_DATAGRAM_MAX bytes (as Open vSwitch's agent: 28 bytes and the agent's address
 * counted for its header) or dps_sflow_flush; then the datagram (header: version 5, the agent's
 * address, sub-agent id, datagram sequence number, uptime in ms, samples) goes to every target.
 * The caller allocates it (zeroed), fills the fields marked "set", and keeps the target
 * sockets open (non-blocking UDP; a datagram a socket refuses is counted in SEND_ERRORS, never
 * waited for).  Control thread only. */
#define DPS_SFLOW_DATAGRAM_MAX 1400
#define DPS_SFLOW_PENDING 2048
#define DPS_SFLOW_TARGETS 8
struct dps_sflow_target {
    int32_t fd;                       /* set: a UDP socket of FAMILY */
    uint32_t family;                  /* set: 4 or 6 */
    uint8_t addr[16];                 /* set: the collector's address (4 bytes for IPv4) */
    uint32_t port;                    /* set: its UDP port */
};
struct dps_sflow_agent {
    uint32_t source;                  /* set: the flow samples' source id (class << 24 | index) */
    uint32_t rate;                    /* set: sampling rate: 1 in RATE */
    uint32_t header;                  /* set: header bytes exported, at most DPS_SFLOW_HEADER_MAX */
    uint32_t seq;                     /* the last flow sample's sequence number */
    uint32_t pool;                    /* the sample pool (RATE more each sample) */
    uint32_t drops;                   /* the samples' drops field: every PMD's sflow_lost */
    uint32_t sub_id;                  /* set: the sub-agent id */
    uint32_t addr_type;               /* set: the agent address's type, 1 IPv4, 2 IPv6 */
    uint8_t addr[16];                 /* set: the agent's address (4 bytes for IPv4) */
    uint64_t boot_ns;                 /* set: the datapath clock at start (uptime's 0) */
    uint32_t datagram_seq;            /* the last datagram's sequence number */
    uint32_t n_targets;               /* set: TARGETS in use */
    struct dps_sflow_target targets[DPS_SFLOW_TARGETS];
    uint64_t flow_samples;            /* flow samples put in datagrams */
    uint64_t datagrams;               /* datagrams sent (one per target) */
    uint64_t send_errors;             /* datagrams a socket refused */
    uint32_t n_pending;               /* samples in PENDING */
    uint32_t pending_len;             /* their bytes */
    uint8_t pending[DPS_SFLOW_PENDING];
};
/* Take up to MAX records from every PMD's sample ring (oldest first within a PMD), encode each
 * as an sFlow v5 flow sample (XDR: the sample record, format 1, with the extended switch record
 * 1001 and the raw header record 1) of agent PORT_AGENT[in_port] (an index into AGENTS, N_AGENTS
 * of them; a port with none, >= N_AGENTS, has its record dropped), input ifIndex
 * PORT_IFINDEX[in_port], output ifIndex the cookie's low 32 bits, into that agent's datagram;
 * the datagrams filled meanwhile are sent in batches (sendmmsg, one call per socket per 64
 * datagrams).  PORT_AGENT and PORT_IFINDEX have DPS_MAX_PORTS entries.  Returns how many flow
 * samples it made.  Control thread; a few hundred cycles a sample, a system call per batch. */
int dps_sflow_export(struct dps_dp *dp, const uint32_t *port_agent, const uint32_t *port_ifindex,
                     struct dps_sflow_agent *const *agents, unsigned n_agents, unsigned max);
/* A sample of LEN bytes (XDR, record header included: a counter sample) into A's datagram,
 * the datagram sent first if it would not fit.  Returns 0, or -1 if LEN is more than a
 * datagram holds (nothing added). */
int dps_sflow_add(struct dps_dp *dp, struct dps_sflow_agent *a, const uint8_t *sample, uint32_t len);
/* Send A's datagram now if it holds a sample. */
void dps_sflow_flush(struct dps_dp *dp, struct dps_sflow_agent *a);
/* Records waiting in the sample rings. */
unsigned dps_sflow_waiting(const struct dps_dp *dp);

/* The eventfd that becomes readable when upcalls wait.  Read it (8 bytes) to re-arm. */
int dps_upcall_fd(const struct dps_dp *dp);
/* Ask to be woken by the eventfd; returns how many upcalls already wait (then don't sleep):
 * those that are not lazy, or all once DPS_LAZY_WAKE wait; and the sFlow records once
 * DPS_SFLOW_WAKE wait. */
unsigned dps_upcall_arm(struct dps_dp *dp);
/* How many upcalls wait, lazy ones and sFlow's records too. */
unsigned dps_upcall_count(const struct dps_dp *dp);
/* Take up to n upcalls. */
int dps_upcall_recv(struct dps_dp *dp, struct dps_upcall *out, unsigned n);
/* Take up to n upcalls of the reserved ring only (the control protocols' frames, so that they
 * are in before the protocols' timers run). */
int dps_control_upcall_recv(struct dps_dp *dp, struct dps_upcall *out, unsigned n);
/* Run ACTIONS on an upcalled packet and let go of it (sent from the control thread's tx
 * queue).  The packet reference is consumed whatever happens. */
int dps_packet_execute(struct dps_dp *dp, void *packet, const uint8_t *actions, uint32_t actions_len);
void dps_packet_free(struct dps_dp *dp, void *packet);
/* ---- Table 0's kept rules in C: flow setup without Python per miss ------------------------
 *
 * A copy, made by the slow path, of one bridge's first OpenFlow table as far as its rules have
 * kept translations (Python's ofproto/ctable.py compiles it from ofproto/classifier.py's
 * subtables; Python stays the one definition of OpenFlow semantics).  The lookup is the
 * classifier's: subtables in Python's order, pruned by their highest priority, each probed
 * stage by stage; the bits consulted are the wildcards Python's lookup records.  Where Python
 * would need prefix or ports tracking to rule a subtable out, a recirculated frame or a
 * fragment, or a port the bridge does not own, the table declines (the miss goes to Python).
 * A rule's datapath actions are its shape's kept translation for the frame's input port
 * (dps_oftable_kept); a rule without one declines too.
 *
 * Contract: the control thread only (the upcall handler; nothing here is read by a PMD).  The
 * slow path builds a table whole and drops it (dps_oftable_free) on any change that would
 * invalidate a kept translation; it never edits one in place but to add kept actions.
 * Cost: a lookup is a CRC hash probe per stage per subtable visited; a setup adds the flow put
 * and the packet-out of the missed frame.
 */
struct dps_oftable;
/* A table.  IN_PORT, RECIRC_FRAG, PORTS and FRAG are key masks (struct dps_flow_key bytes):
 * in_port (consulted always), recirc_id and ip_frag (a key with any of these set declines),
 * tp_src/tp_dst (a lookup that consulted any of them consults FRAG as well).  ETH_OFS: the
 * byte offset of eth_type (network order) in the key. */
struct dps_oftable *dps_oftable_new(const uint8_t *in_port, const uint8_t *recirc_frag, const uint8_t *ports,
                                    const uint8_t *frag, uint32_t eth_ofs);
void dps_oftable_free(struct dps_oftable *t);
/* Datapath port DP_PORT is OpenFlow port OFPORT of the bridge (others decline). */
int dps_oftable_port(struct dps_oftable *t, uint32_t dp_port, uint32_t ofport);
/* Prefix tracking's field I (< 4): LEN bytes at OFS in the key, for frames of ETH_TYPE. */
int dps_oftable_trie(struct dps_oftable *t, unsigned i, uint32_t ofs, uint32_t len, uint16_t eth_type);
/* Rules of the table have these N PLEN-bit prefixes on field I (PREFIXES: each the field's
 * bytes, masked, back to back). */
int dps_oftable_prefixes(struct dps_oftable *t, unsigned i, unsigned plen, unsigned n, const uint8_t *prefixes);
/* The next subtable in lookup order: its MASK, its N_STAGES cumulative stage masks back to
 * back in STAGES (the last is MASK), its highest priority, its prefixes (N_PREFIXES pairs of
 * TRIES[j], PLENS[j]), whether ports tracking applies.  Returns its index. */
int dps_oftable_subtable(struct dps_oftable *t, const uint8_t *mask, const uint8_t *stages, unsigned n_stages,
                         int32_t max_priority, const uint8_t *tries, const uint8_t *plens, unsigned n_prefixes,
                         int ports);
/* N rules of subtable ST: KEYS (masked, back to back), the best rule of each key: its
 * priority, its id (the slow path's) and its shape (instructions; kept actions by shape). */
int dps_oftable_rules(struct dps_oftable *t, unsigned st, unsigned n, const uint8_t *keys,
                      const int32_t *priorities, const uint32_t *ids, const uint32_t *shapes);
/* The kept datapath actions of SHAPE from DP_PORT (copied). */
int dps_oftable_kept(struct dps_oftable *t, uint32_t shape, uint32_t dp_port, const uint8_t *actions,
                     uint32_t len);
/* Table 0's lookup of KEY (its in_port a datapath port): 1 and *RULE (an id) when a rule
 * matched, 0 when none did, with the bits consulted in WC (a key mask, in_port included); -1:
 * declined (Python must look up). */
int dps_oftable_lookup(const struct dps_oftable *t, const struct dps_flow_key *key, uint32_t *rule,
                       struct dps_flow_key *wc);
/* The UFID that names megaflow (MASKED, MASK), the slow path's one naming. */
void dps_megaflow_ufid(const struct dps_flow_key *masked, const struct dps_flow_key *mask, struct dps_ufid *out);
/* One miss set up in C. */
struct dps_setup_row {
    struct dps_ufid ufid;
    uint32_t rule;                    /* the rule's id */
    int32_t result;                   /* the put's: 0, -EEXIST (a flow of that UFID is in), -ENOSPC, ... */
    uint32_t len;                     /* the frame's length */
    uint32_t in_port;                 /* the key's (a datapath port) */
    struct dps_flow_key key;          /* the miss's key */
    struct dps_flow_key masked;       /* the megaflow's key, masked */
    struct dps_flow_key mask;         /* its mask (in_port and recirc_id exact) */
};
/* The misses among UPS[0..N) that table T answers, up to ROOM of them: each one's megaflow is
 * put (DPS_FLOW_CREATE, one batch) and the frame executed with its rule's kept actions, and a
 * row written to ROWS (in order).  The upcalls left (every other one) are moved to the front
 * of UPS, in order, *N_LEFT of them.  Returns the rows written. */
int dps_oftable_setup(struct dps_dp *dp, const struct dps_oftable *t, struct dps_upcall *ups, unsigned n,
                      unsigned room, struct dps_setup_row *rows, unsigned *n_left);

/* Build a packet from bytes, as received on IN_PORT, and run ACTIONS on it. */
int dps_execute(struct dps_dp *dp, const uint8_t *frame, uint32_t len, uint32_t in_port,
                const uint8_t *actions, uint32_t actions_len);
/* Check an action list as a put would; 0 or -EINVAL with the reason. */
int dps_actions_check(const uint8_t *actions, uint32_t len);

/* ---- PMD threads ---------------------------------------------------------------------- */

struct dps_rxq_pin {
    uint32_t dp_port;
    uint16_t queue;
    uint16_t pad;
    uint32_t lcore;
};

/* Start one PMD thread on each worker lcore given (not the main lcore).  Rx queues go to
 * PMDs round-robin in (port, queue) order, except those pinned.  With none started, the
 * datapath runs in deterministic mode: nothing polls until dps_dp_poll() is called. */
int dps_pmd_start(struct dps_dp *dp, const uint32_t *lcores, unsigned n_lcores);
int dps_pmd_pin(struct dps_dp *dp, const struct dps_rxq_pin *pins, unsigned n_pins);
/* Stop every PMD thread and wait for each to return. */
int dps_pmd_stop(struct dps_dp *dp);
unsigned dps_pmd_count(const struct dps_dp *dp);

/* Deterministic mode: run ITERATIONS poll iterations over every rx queue on the calling
 * thread (fails with -EBUSY while PMD threads run).  Returns packets received.  Its counters
 * are the last slot of dps_pmd_stats(), index DPS_MAX_PMDS. */
int dps_dp_poll(struct dps_dp *dp, unsigned iterations);

/* Cycles by stage.  While dps_pmd_stage_sampling(dp, N) is on, each PMD reads the TSC after
 * every stage of every Nth poll iteration (once per stage per burst, not per frame) and adds
 * the laps to stage_cycles[] below, for iterations that received frames; stage_cycles[s] /
 * sampled_packets is stage s's cycles per frame.  Off (N = 0, the default) a stage boundary
 * costs one predicted branch.  The cheap path (DPS_STAGE_SIMPLE) matches each frame's L2 header
 * against its port's few flows and runs the flow's actions frame by frame, so its lookup and
 * actions are one stage (with a single in_port-only flow it is actions alone); the full path's
 * stages are PARSE, EMC, MASKED and ACTIONS. */
#define DPS_STAGE_UPKEEP 0            /* EMC hints from the slow path; parked frames retried */
#define DPS_STAGE_RX 1                /* rte_eth_rx_burst, every rx queue */
#define DPS_STAGE_SIMPLE 2            /* the cheap path whole: L2 match and actions, frame by frame */
#define DPS_STAGE_PARSE 3             /* the full parse and the key hash */
#define DPS_STAGE_EMC 4               /* exact-match cache lookups */
#define DPS_STAGE_MASKED 5            /* masked classifier: subtable lookups, EMC inserts */
#define DPS_STAGE_ACTIONS 6           /* flow counters and actions (into tx batches); misses upcalled */
#define DPS_STAGE_TX 7                /* rte_eth_tx_burst of the iteration's batches */
#define DPS_STAGE_RECIRC 8            /* the burst's recirculated frames: their lookups and actions */
#define DPS_STAGES 9

/* Per-PMD counters, written by their PMD only, read in place (tests/test_abi.py checks the
 * layout against numpy).  320 bytes each, so no two PMDs share a cache line. */
struct dps_pmd_stats {
    uint64_t rx_packets;
    uint64_t tx_packets;
    uint64_t tx_dropped;
    uint64_t busy_cycles;            /* TSC cycles of iterations that received packets */
    uint64_t idle_cycles;            /* TSC cycles of iterations that received none */
    uint64_t iterations;
    uint64_t emc_hits;               /* exact-match cache hits */
    uint64_t megaflow_hits;          /* masked classifier hits */
    uint64_t subtable_lookups;       /* subtables probed for the masked hits */
    uint64_t misses;                 /* upcalls queued */
    uint64_t lost;                   /* misses dropped: ring full, or the port's share used */
    uint64_t dups;                   /* misses of a flow already upcalled: parked, not queued */
    uint64_t tx_batches;             /* tx bursts sent (tx_packets / tx_batches = batch size) */
    uint64_t recirculations;
    uint64_t meter_drops;
    uint64_t action_drops;           /* bad actions, recirculation too deep, no buffer to copy */
    uint64_t simple_hits;            /* frames forwarded by in_port alone: no parse, no cache */
    uint64_t sampled_iterations;     /* iterations whose stages were timed (those with frames) */
    uint64_t sampled_packets;        /* frames they received */
    uint64_t sampled_cycles;         /* their TSC cycles, whole: the stages and the loop's own */
    uint64_t stage_cycles[DPS_STAGES];   /* of those, in each stage (DPS_STAGE_*) */
    uint64_t sflow_samples;          /* sFlow samples put in its sample ring */
    uint64_t sflow_lost;             /* sFlow samples dropped: its sample ring was full */
    uint32_t lcore;
    uint32_t active;                 /* 1 while the thread runs */
    uint32_t n_rxq;                  /* rx queues it polls */
    uint32_t pad;
    uint64_t one_pass;               /* of the recirculations, second passes run at once from the
                                      * recirculation cache, not in a round of their own */
    uint64_t bucket_pass;            /* of those, run from the recirculation buckets (flow.h) */
    uint32_t pad2[10];               /* to 320 bytes: five cache lines */
};
/* The counters array: DPS_MAX_PMDS + 1 entries (the last for deterministic polling). */
struct dps_pmd_stats *dps_pmd_stats(struct dps_dp *dp);
uint64_t dps_tsc_hz(void);
/* Time the stages of every Nth poll iteration of every PMD (the deterministic poller too);
 * 0 turns it off.  PMDs see the change at their next iteration. */
void dps_pmd_stage_sampling(struct dps_dp *dp, uint32_t every);

/* Memory, for the benchmark's per-megaflow figures. */
struct dps_mem_stats {
    uint64_t heap_allocated;         /* bytes allocated from DPDK's heaps (rte_malloc), every
                                      * socket: the whole process's, every datapath's */
    uint64_t heap_total;             /* the heaps' size */
    uint64_t flow_slot_bytes;        /* outside those heaps, per flow slot (flow_limit of them,
                                      * used or not): the slot, its free-list entry, and its
                                      * counters in each PMD (the deterministic poller's too) */
    uint32_t flow_limit;
    uint32_t n_flows;
};
/* Fills OUT.  Costs a walk of the heaps' element lists: milliseconds. */
void dps_mem_stats(const struct dps_dp *dp, struct dps_mem_stats *out);

/* Which PMD polls which rx queue: fills up to n entries with (dp_port, queue, lcore of the
 * PMD that polls it, or UINT32_MAX while no PMD runs); returns how many rx queues exist. */
int dps_rxq_assignment(const struct dps_dp *dp, struct dps_rxq_pin *out, unsigned n);

#endif /* DPDKSWITCH_H */
