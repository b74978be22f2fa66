#!/usr/bin/env python3
"""Independent check of the QUIC-LB test vectors of draft-ietf-quic-load-balancers-21.

Written from the draft's prose (Section "Server Actions", steps 1-12), not from Rondo's
code; AES-128-ECB comes from the `cryptography` package (OpenSSL). Prints every
intermediate value of the four-pass algorithm and each vector's CID.
"""
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def aes(key, block):
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def expand(length, pas, half):
    return half + bytes(14 - len(half)) + bytes([length, pas])


def four_pass(key, pt, trace=False):
    n = len(pt)
    h = (n + 1) // 2
    odd = n % 2 == 1
    left = bytearray(pt[:h])
    right = bytearray(pt[n - h:])
    if odd:
        left[-1] &= 0xF0
        right[0] &= 0x0F
    def log(*a):
        if trace:
            print("   ", *a)
    log("left_0", left.hex(), "right_0", right.hex())
    for p in (1, 2, 3, 4):
        src, dst = (left, right) if p % 2 else (right, left)
        inp = expand(n, p, bytes(src))
        out = aes(key, inp)
        for i in range(h):
            dst[i] ^= out[i]
        if odd:
            if p % 2:
                dst[0] &= 0x0F
            else:
                dst[-1] &= 0xF0
        log(f"pass {p}: aes_input", inp.hex(), "aes_output", out.hex(),
            "right" if p % 2 else "left", dst.hex())
    if odd:
        return bytes(left[:-1]) + bytes([left[-1] | right[0]]) + bytes(right[1:])
    return bytes(left) + bytes(right)


def encode(cr, sid, nonce, key=None):
    pt = sid + nonce
    first = (cr << 5) | len(pt)  # self-encoded length: CID length minus one
    if key is None:
        body = pt
    elif len(pt) == 16:
        body = aes(key, pt)
    else:
        body = four_pass(key, pt)
    return bytes([first]) + body


h = bytes.fromhex
print("Encryption example (steps 1-12):")
ex = four_pass(h("fdf726a9893ec05c0632d3956680baf0"), h("31441a") + h("9c69c275"), trace=True)
print("    cid", (bytes([0x07]) + ex).hex())

print("Unencrypted:")
print("  ", encode(0, h("c4605e"), h("4504cc4f")).hex(), "draft 07c4605e4504cc4f")
print("  ", encode(1, h("350d28b420"), h("03487d970b")).hex(), "draft 20a350d28b4203487d970b")

K = h("8f95f09245765f80256934e50c66207f")
print("Encrypted:")
for cr, sid, nonce, draft in [
    (0, "ed793a", "ee080dbf", "0720b1d07b359d3c"),
    (1, "ed793a51d49b8f5fab65", "ee080dbf48", "2fcc381bc74cb4fbad2823a3d1f8fed2"),
    (2, "ed793a51d49b8f5f", "ee080dbf48c0d1e5", "504dd2d05a7b0de9b2b9907afb5ecf8cc3"),
    (3, "ed793a51d49b8f5fab", "ee080dbf48c0d1e55d", "125779c9cc86beb3a3a4a3ca96fce4bfe0cdbc"),
]:
    print("  ", cr, encode(cr, h(sid), h(nonce), K).hex(), "draft", draft)
