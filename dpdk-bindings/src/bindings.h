/* Headers handed to bindgen (build.rs) and included by shim.c.
 * rte_config.h comes in through `-include rte_config.h` from pkg-config. */
#ifndef RONDO_DPDK_BINDINGS_H
#define RONDO_DPDK_BINDINGS_H

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ether.h>
#include <rte_ethdev.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_version.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>

/* C shims for DPDK's static-inline functions and macros (src/shim.c).
 * Declared here so bindgen emits them; lib.rs re-exports them under the
 * DPDK names without the trailing underscore. */
uint16_t rte_eth_rx_burst_(uint16_t port_id, uint16_t queue_id,
                           struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t rte_eth_tx_burst_(uint16_t port_id, uint16_t queue_id,
                           struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
struct rte_mbuf *rte_pktmbuf_alloc_(struct rte_mempool *mp);
void rte_pktmbuf_free_(struct rte_mbuf *m);
int rte_pktmbuf_alloc_bulk_(struct rte_mempool *pool, struct rte_mbuf **mbufs,
                            unsigned int count);
char *rte_pktmbuf_prepend_(struct rte_mbuf *m, uint16_t len);
char *rte_pktmbuf_adj_(struct rte_mbuf *m, uint16_t len);
int rte_pktmbuf_trim_(struct rte_mbuf *m, uint16_t len);
char *rte_pktmbuf_append_(struct rte_mbuf *m, uint16_t len);
void *rte_pktmbuf_mtod_(struct rte_mbuf *m);
uint16_t rte_pktmbuf_headroom_(const struct rte_mbuf *m);
uint16_t rte_pktmbuf_tailroom_(const struct rte_mbuf *m);
unsigned int rte_lcore_id_(void);
int rte_errno_(void);
void rte_errno_set_(int value);
/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP (function-like macros of
 * RTE_BIT64, which bindgen skips): lets the tests check the Rust constants. */
uint64_t rte_eth_rss_ip_tcp_udp_(void);
unsigned int rte_ring_enqueue_burst_(struct rte_ring *r, void *const *obj_table,
                                     unsigned int n, unsigned int *free_space);
unsigned int rte_ring_dequeue_burst_(struct rte_ring *r, void **obj_table,
                                     unsigned int n, unsigned int *available);
unsigned int rte_ring_count_(const struct rte_ring *r);

#endif
