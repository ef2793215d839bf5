"""Decode one captured frame down to the cleartext IKE header, by hand with `struct`.

Link layers: Ethernet (+802.1Q/802.1ad tags), Linux cooked v1/v2, raw IP. Network: IPv4 and IPv6
(extension headers walked to the Fragment header, 44). Transport: UDP 500, and UDP 4500 only behind
the 4-byte zero non-ESP marker (RFC 3948: ESP-in-UDP and the 1-byte 0xFF keepalive are not IKE).
IKE: the 28-byte header (RFC 7296 §3.1 / RFC 2408 §3.1), validated against the UDP length, plus the
first payload's generic header (SK/SKF inner type, SKF fragment number/total, RFC 7383).

`decode()` never raises on hostile input: every length is checked before it is trusted, and anything
that does not add up comes back as `(MALFORMED, reason)`. It must stay cheap for the ~99% of traffic
that is not IKE (ESP, TCP...), so the common rejections come first and allocate nothing.
This module keeps no state; fragment bookkeeping lives in `fragments`.
"""

from __future__ import annotations

import struct
from typing import Final, Literal

# decode() result kinds
WHOLE: Final = 1  # (WHOLE, IkeHeader): an unfragmented IKE datagram
FIRST: Final = 2  # (FIRST, key, piece_len, more, IkeHeader | None): offset-0 fragment (None: UDP, not IKE)
NEXT: Final = 3  # (NEXT, key, offset, piece_len, more): a non-first UDP fragment
MALFORMED: Final = 4  # (MALFORMED, reason)
ESP_IN_UDP: Final = 5
KEEPALIVE: Final = 6

IKE_PORT = 500
NATT_PORT = 4500

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_LINKTYPES = frozenset({LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6})
_VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
_IPV6_EXT = frozenset({0, 43, 60})

PAYLOAD_SA = 33
PAYLOAD_NOTIFY = 41
PAYLOAD_SK = 46
PAYLOAD_SKF = 53

FLAG_INITIATOR = 0x08
FLAG_RESPONSE = 0x20
_V2_RESERVED_FLAGS = 0xC7

EXCHANGES_V2 = {
    34: "IKE_SA_INIT",
    35: "IKE_AUTH",
    36: "CREATE_CHILD_SA",
    37: "INFORMATIONAL",
    38: "IKE_SESSION_RESUME",
    43: "IKE_INTERMEDIATE",
    44: "IKE_FOLLOWUP_KE",
}
EXCHANGES_V1 = {
    0: "NONE_V1",
    1: "BASE_V1",
    2: "MAIN_MODE",
    3: "AUTH_ONLY_V1",
    4: "AGGRESSIVE",
    5: "INFORMATIONAL_V1",
    32: "QUICK_MODE",
    33: "NEW_GROUP_MODE",
}

_IKE_HDR = struct.Struct("!8s8sBBBBII")
_ike_unpack = _IKE_HDR.unpack_from
_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from


def exchange_name(version: int, exchange: int) -> str:
    """Stable, human-readable exchange name; unknown values keep their number."""
    if version == 0x10:
        return EXCHANGES_V1.get(exchange, f"V1_EXCHANGE_{exchange}")
    return EXCHANGES_V2.get(exchange, f"V2_EXCHANGE_{exchange}")


class IkeHeader:
    """The cleartext facts of one IKE message as seen in its (first) datagram."""

    __slots__ = (
        "family",
        "src",
        "dst",
        "sport",
        "dport",
        "marker",
        "spi_i",
        "spi_r",
        "next_payload",
        "version",
        "exchange",
        "flags",
        "msgid",
        "length",
        "inner",
        "frag_num",
        "frag_total",
        "ip_header_len",
        "udp_len",
        "ip_id",
    )

    family: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    marker: int
    spi_i: bytes
    spi_r: bytes
    next_payload: int
    version: int
    exchange: int
    flags: int
    msgid: int
    length: int
    inner: int | None
    frag_num: int
    frag_total: int
    ip_header_len: int
    udp_len: int
    ip_id: int

    def __init__(self) -> None:
        self.inner = None
        self.frag_num = 0
        self.frag_total = 0
        self.ip_id = 0

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE) if self.version != 0x10 else False

    @property
    def datagram_bytes(self) -> int:
        """Size of the IP datagram that carries (or carried, before fragmentation) the message."""
        return int(self.ip_header_len + self.udp_len)

    @property
    def exchange_name(self) -> str:
        return exchange_name(self.version, self.exchange)


# Typed results (plain tuples: this is the hot path). (family, src, dst, IP id) names a fragment set.
FragmentKey = tuple[int, bytes, bytes, int]
Whole = tuple[Literal[1], IkeHeader]
First = tuple[Literal[2], FragmentKey, int, bool, IkeHeader | None]
Next = tuple[Literal[3], FragmentKey, int, int, bool]
Malformed = tuple[Literal[4], str]
Decoded = Whole | First | Next | Malformed | Literal[5, 6] | None
Udp = IkeHeader | Malformed | Literal[5, 6] | None


def decode(data: bytes, linktype: int) -> Decoded:
    """Classify one frame; see the result kinds above. None means "not IKE-related"."""
    n = len(data)
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            return (MALFORMED, "truncated_link")
        et = (data[12] << 8) | data[13]
        off = 14
        while et in _VLAN_TYPES:
            if n < off + 4:
                return (MALFORMED, "truncated_link")
            et = (data[off + 2] << 8) | data[off + 3]
            off += 4
        if et == 0x0800:
            return _ipv4(data, off, n)
        if et == 0x86DD:
            return _ipv6(data, off, n)
        return None
    if linktype in _RAW_LINKTYPES:
        if n < 1:
            return (MALFORMED, "truncated_ip")
        v = data[0] >> 4
        if v == 4:
            return _ipv4(data, 0, n)
        if v == 6:
            return _ipv6(data, 0, n)
        return None
    if linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            return (MALFORMED, "truncated_link")
        et = (data[14] << 8) | data[15]
        off = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            return (MALFORMED, "truncated_link")
        et = (data[0] << 8) | data[1]
        off = 20
    else:
        return (MALFORMED, "unsupported_linktype")
    if et == 0x0800:
        return _ipv4(data, off, n)
    if et == 0x86DD:
        return _ipv6(data, off, n)
    return None


def _ipv4(data: bytes, off: int, n: int) -> Decoded:
    if n < off + 20:
        return (MALFORMED, "truncated_ip")
    if data[off + 9] != 17:  # not UDP: the common ESP/TCP case leaves here
        return None
    vihl = data[off]
    ihl = (vihl & 15) << 2
    if vihl >> 4 != 4 or ihl < 20:
        return (MALFORMED, "bad_ip_header")
    total = (data[off + 2] << 8) | data[off + 3]
    plen = total - ihl
    if plen < 0:
        return (MALFORMED, "bad_ip_length")
    ff = (data[off + 6] << 8) | data[off + 7]
    foff = (ff & 0x1FFF) << 3
    more = ff & 0x2000
    if foff or more:
        ipid = (data[off + 4] << 8) | data[off + 5]
        key: FragmentKey = (4, data[off + 12 : off + 16], data[off + 16 : off + 20], ipid)
        if plen == 0:
            return (MALFORMED, "empty_fragment")
        if foff:
            return (NEXT, key, foff, plen, bool(more))
        hdr = _udp(data, off, off + ihl, n, plen, 4, True)
        if isinstance(hdr, IkeHeader):
            hdr.ip_id = ipid
            return (FIRST, key, plen, True, hdr)
        if hdr is None or isinstance(hdr, int):  # UDP, but not IKE: its later pieces are not ours
            return (FIRST, key, plen, True, None)
        return hdr  # malformed
    hdr = _udp(data, off, off + ihl, n, plen, 4, False)
    if isinstance(hdr, IkeHeader):
        return (WHOLE, hdr)
    return hdr


def _ipv6(data: bytes, off: int, n: int) -> Decoded:
    if n < off + 40:
        return (MALFORMED, "truncated_ip")
    if data[off] >> 4 != 6:
        return (MALFORMED, "bad_ip_header")
    plen = (data[off + 4] << 8) | data[off + 5]
    nh = data[off + 6]
    pos = off + 40
    end_of_payload = pos + plen
    hops = 0
    while nh in _IPV6_EXT:
        if n < pos + 8 or hops > 8:
            return (MALFORMED, "truncated_ip")
        nh = data[pos]
        pos += (data[pos + 1] + 1) << 3
        hops += 1
    if nh == 44:
        if n < pos + 8:
            return (MALFORMED, "truncated_ip")
        inner = data[pos]
        fo = (data[pos + 2] << 8) | data[pos + 3]
        foff = fo & 0xFFF8
        more = fo & 1
        ident = _u32(data, pos + 4)[0]
        pos += 8
        piece = end_of_payload - pos
        if inner != 17:
            return None
        if piece <= 0:
            return (MALFORMED, "empty_fragment")
        if foff or more:
            key: FragmentKey = (6, data[off + 8 : off + 24], data[off + 24 : off + 40], ident)
            if foff:
                return (NEXT, key, foff, piece, bool(more))
            hdr = _udp(data, off, pos, n, piece, 6, True)
            if isinstance(hdr, IkeHeader):
                hdr.ip_id = ident
                return (FIRST, key, piece, True, hdr)
            if hdr is None or isinstance(hdr, int):
                return (FIRST, key, piece, True, None)
            return hdr
        nh = inner  # atomic fragment (RFC 6946): really unfragmented
    if nh != 17:
        return None
    piece = end_of_payload - pos
    if piece < 0:
        return (MALFORMED, "bad_ip_length")
    hdr = _udp(data, off, pos, n, piece, 6, False)
    if isinstance(hdr, IkeHeader):
        return (WHOLE, hdr)
    return hdr


def _udp(data: bytes, ipoff: int, uoff: int, n: int, plen: int, family: int, fragment: bool) -> Udp:
    """Parse UDP + IKE header at uoff. plen is the IP payload length (this piece, if fragmented)."""
    if n < uoff + 8:
        return (MALFORMED, "truncated_udp")
    sport = (data[uoff] << 8) | data[uoff + 1]
    dport = (data[uoff + 2] << 8) | data[uoff + 3]
    if sport == IKE_PORT or dport == IKE_PORT:
        marker = 0
    elif sport == NATT_PORT or dport == NATT_PORT:
        marker = 4
    else:
        return None
    ulen = (data[uoff + 4] << 8) | data[uoff + 5]
    if ulen < 8:
        return (MALFORMED, "bad_udp_length")
    if fragment:
        if ulen <= plen:
            return (MALFORMED, "bad_udp_length")
    elif ulen != plen:
        return (MALFORMED, "bad_udp_length")
    p = uoff + 8
    if marker:
        if ulen == 9:
            if n > p and data[p] == 0xFF:
                return KEEPALIVE
            return (MALFORMED, "truncated_udp") if n <= p else ESP_IN_UDP
        if n < p + 4:
            return (MALFORMED, "truncated_udp")
        if data[p] or data[p + 1] or data[p + 2] or data[p + 3]:
            return ESP_IN_UDP
        p += 4
    if n < p + 28:
        return (MALFORMED, "truncated_ike")
    spi_i, spi_r, np, ver, exch, flags, msgid, length = _ike_unpack(data, p)
    if ver == 0x10:
        pass
    elif ver >> 4 == 2:
        if flags & _V2_RESERVED_FLAGS:
            return (MALFORMED, "bad_ike_flags")
    else:
        return (MALFORMED, "bad_ike_version")
    if length < 28 or length + marker + 8 != ulen:
        return (MALFORMED, "bad_ike_length")
    h = IkeHeader()
    h.family = family
    if family == 4:
        h.src = data[ipoff + 12 : ipoff + 16]
        h.dst = data[ipoff + 16 : ipoff + 20]
    else:
        h.src = data[ipoff + 8 : ipoff + 24]
        h.dst = data[ipoff + 24 : ipoff + 40]
    h.sport = sport
    h.dport = dport
    h.marker = marker
    h.spi_i = spi_i
    h.spi_r = spi_r
    h.next_payload = np
    h.version = ver
    h.exchange = exch
    h.flags = flags
    h.msgid = msgid
    h.length = length
    h.ip_header_len = uoff - ipoff
    h.udp_len = ulen
    if ver != 0x10 and (np == PAYLOAD_SK or np == PAYLOAD_SKF) and length >= 32 and n >= p + 32:
        h.inner = data[p + 28]
        if np == PAYLOAD_SKF:
            if length < 36 or n < p + 36:
                return (MALFORMED, "truncated_ike")
            h.frag_num = (data[p + 32] << 8) | data[p + 33]
            h.frag_total = (data[p + 34] << 8) | data[p + 35]
            if h.frag_num == 0 or h.frag_num > h.frag_total:
                return (MALFORMED, "bad_skf_numbering")
    return h
