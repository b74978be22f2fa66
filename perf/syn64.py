#!/usr/bin/env python3
"""Write a capture of 1024 flows of 64-byte TCP SYNs (60 bytes + FCS) to the VIP 1.1.1.1:80
(configs/director.toml, perf/run's config): the input of the DPDK net_pcap benchmarks."""
import struct, sys


def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(1024):
        src = bytes([10, 0, i >> 8, i & 255]); dst = bytes([1, 1, 1, 1])
        tcp = struct.pack('!HHIIBBHHH', 1024 + i, 80, i, 0, 5 << 4, 0x02, 65535, 0, 0)
        c = csum(src + dst + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
        tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, i, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        eth = bytes.fromhex('020000000001') + bytes.fromhex('0200000000aa') + b'\x08\x00'
        frame = (eth + ip + tcp).ljust(60, b'\0')
        f.write(struct.pack('<IIII', 0, 0, len(frame), len(frame)) + frame)
