/* Out-of-line wrappers for DPDK 22.11 static-inline functions, macros and
 * thread-locals, so Rust can call them. Compiled by build.rs with the full
 * `pkg-config --cflags libdpdk` (incl. -include rte_config.h, -march=corei7).
 *
 * Not wrapped because 22.11 exports them as real functions (bindgen binds
 * them directly): rte_pktmbuf_free_bulk, rte_mempool_avail_count,
 * rte_mempool_in_use_count, rte_socket_id. */
#include "bindings.h"

uint16_t rte_eth_rx_burst_(uint16_t port_id, uint16_t queue_id,
                           struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t rte_eth_tx_burst_(uint16_t port_id, uint16_t queue_id,
                           struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *rte_pktmbuf_alloc_(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

void rte_pktmbuf_free_(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

int rte_pktmbuf_alloc_bulk_(struct rte_mempool *pool, struct rte_mbuf **mbufs,
                            unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(pool, mbufs, count);
}

char *rte_pktmbuf_prepend_(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *rte_pktmbuf_adj_(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int rte_pktmbuf_trim_(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

char *rte_pktmbuf_append_(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void *rte_pktmbuf_mtod_(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t rte_pktmbuf_headroom_(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t rte_pktmbuf_tailroom_(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

unsigned int rte_lcore_id_(void)
{
	return rte_lcore_id();
}

int rte_errno_(void)
{
	return rte_errno;
}

void rte_errno_set_(int value)
{
	rte_errno = value;
}

uint64_t rte_eth_rss_ip_tcp_udp_(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

unsigned int rte_ring_enqueue_burst_(struct rte_ring *r, void *const *obj_table,
                                     unsigned int n, unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int rte_ring_dequeue_burst_(struct rte_ring *r, void **obj_table,
                                     unsigned int n, unsigned int *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}

unsigned int rte_ring_count_(const struct rte_ring *r)
{
	return rte_ring_count(r);
}
