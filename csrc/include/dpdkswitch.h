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
#define DPS_MAX_FWD_OUT 16        /* output ports of one static-map entry */
#define DPS_BURST 32              /* rx burst and tx batch size */
#define DPS_NAME_LEN 64
#define DPS_XSTAT_NAME_LEN 64

/* ---- The flow key ------------------------------------------------------------------------
 *
 * What the parser extracts from a frame, and what flows match on (with a mask of the same
 * layout).  Every multi-byte field is in network byte order, so a mask applies to the bytes as
 * they are and a set-field writes them back unchanged.  Fields a frame does not have are zero:
 * "absent" is told apart by eth_type, nw_proto and nw_frag, as in Open vSwitch.  The Python side
 * describes each field (offset, width, prerequisites) once, in dpdkswitch/ofproto/fields.py;
 * tests/test_abi.py checks that description against this struct's DWARF.
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
    uint32_t pad3;                    /* to a whole number of 64-bit words: 120 bytes */
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

/* ---- Datapath ------------------------------------------------------------------------- */

struct dps_dp;

struct dps_dp_params {
    uint32_t n_mbufs;        /* mbufs of the first mempool on each NUMA socket; 0 = 16384 */
    uint32_t mbuf_cache;     /* per-lcore mempool cache; 0 = 256 */
    int manual_clock;        /* 1: dps_clock_now() returns what dps_clock_set() gave */
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

/* ---- Forwarding: the static port map (until the flow cache replaces it) -------------- */

/* Frames received on IN_PORT go out of each of OUT (n_out ≤ DPS_MAX_FWD_OUT; 0 drops). */
int dps_fwd_set(struct dps_dp *dp, uint32_t in_port, const uint32_t *out, unsigned n_out);

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

/* Per-PMD counters, written by their PMD only, read in place (tests/test_abi.py checks the
 * layout against numpy).  64 bytes apart, so no two PMDs share a cache line. */
struct dps_pmd_stats {
    uint64_t rx_packets;
    uint64_t tx_packets;
    uint64_t tx_dropped;
    uint64_t busy_cycles;            /* TSC cycles of iterations that received packets */
    uint64_t idle_cycles;            /* TSC cycles of iterations that received none */
    uint64_t iterations;
    uint32_t lcore;
    uint32_t active;                 /* 1 while the thread runs */
    uint32_t n_rxq;                  /* rx queues it polls */
    uint32_t pad[3];
};
/* The counters array: DPS_MAX_PMDS + 1 entries (the last for deterministic polling). */
struct dps_pmd_stats *dps_pmd_stats(struct dps_dp *dp);
uint64_t dps_tsc_hz(void);

/* Which PMD polls which rx queue: fills up to n entries with (dp_port, queue, lcore of the
 * PMD that polls it, or UINT32_MAX while no PMD runs); returns how many rx queues exist. */
int dps_rxq_assignment(const struct dps_dp *dp, struct dps_rxq_pin *out, unsigned n);

#endif /* DPDKSWITCH_H */
