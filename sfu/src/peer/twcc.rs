//! Transport-wide congestion control feedback (RTCP, draft-holmer-rmcat-
//! transport-wide-cc-extensions-01) turned into the estimator's [`Feedback`]:
//! one arrival time or loss per packet. The estimation itself is in
//! [`crate::bwe`]; this file only knows the wire format's chunks and deltas.

use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
};

use crate::bwe::Feedback;

/// One unit of the RTCP reference time, µs.
const REFERENCE_UNIT_US: i64 = 64_000;

/// Converts a transport-wide feedback message into per-packet arrivals.
///
/// Malformed messages degrade rather than fail: symbols beyond the status
/// count are dropped, packets the chunks do not cover and received packets
/// without a delta left in the message count as not received.
pub(crate) fn feedback_from_rtcp(fb: &TransportLayerCc) -> Feedback {
    let count = usize::from(fb.packet_status_count);
    let mut arrivals = Vec::with_capacity(count);
    let mut deltas = fb.recv_deltas.iter();
    // Each delta is relative to the previous received packet, the first to the reference time.
    let mut offset_us = 0i64;
    let mut push = |symbol: SymbolTypeTcc| {
        let arrival = match symbol {
            SymbolTypeTcc::PacketReceivedSmallDelta | SymbolTypeTcc::PacketReceivedLargeDelta => {
                deltas.next().map(|d| {
                    offset_us = offset_us.saturating_add(d.delta);
                    offset_us
                })
            }
            // "Received without delta" is reserved by the draft and no
            // browser sends it: with no time it cannot inform the estimate.
            SymbolTypeTcc::PacketNotReceived | SymbolTypeTcc::PacketReceivedWithoutDelta => None,
        };
        arrivals.push(arrival);
    };
    let mut left = count;
    for chunk in &fb.packet_chunks {
        if left == 0 {
            break;
        }
        match chunk {
            PacketStatusChunk::RunLengthChunk(c) => {
                let n = usize::from(c.run_length).min(left);
                for _ in 0..n {
                    push(c.packet_status_symbol);
                }
                left -= n;
            }
            PacketStatusChunk::StatusVectorChunk(c) => {
                let n = c.symbol_list.len().min(left);
                for &symbol in &c.symbol_list[..n] {
                    push(symbol);
                }
                left -= n;
            }
        }
    }
    arrivals.resize(count, None);
    Feedback {
        base_seq: fb.base_sequence_number,
        reference_us: i64::from(fb.reference_time) * REFERENCE_UNIT_US,
        arrivals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
        RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
    };
    use rtc::shared::marshal::{Marshal, Unmarshal};

    fn delta(kind: SymbolTypeTcc, us: i64) -> RecvDelta {
        RecvDelta {
            type_tcc_packet: kind,
            delta: us,
        }
    }

    fn run(symbol: SymbolTypeTcc, run_length: u16) -> PacketStatusChunk {
        PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: symbol,
            run_length,
        })
    }

    fn vector(size: SymbolSizeTypeTcc, symbols: Vec<SymbolTypeTcc>) -> PacketStatusChunk {
        PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
            type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
            symbol_size: size,
            symbol_list: symbols,
        })
    }

    #[test]
    fn run_length_and_vectors_with_small_large_and_negative_deltas_convert_exactly() {
        use SymbolTypeTcc::{
            PacketNotReceived as Lost, PacketReceivedLargeDelta as Large,
            PacketReceivedSmallDelta as Small,
        };
        let cc = TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_sequence_number: 65_533,
            packet_status_count: 2 + 7 + 14 + 3,
            reference_time: 0x12_3456,
            fb_pkt_count: 7,
            packet_chunks: vec![
                // 65533, 65534: received.
                run(Small, 2),
                // 65535, 0, 1, 2, 3, 4, 5: small, lost, large (negative), lost, small, large, lost.
                vector(
                    SymbolSizeTypeTcc::TwoBit,
                    vec![Small, Lost, Large, Lost, Small, Large, Lost],
                ),
                // 6..=19: one-bit: received, lost × 12, received.
                vector(
                    SymbolSizeTypeTcc::OneBit,
                    [Small]
                        .into_iter()
                        .chain([Lost; 12])
                        .chain([Small])
                        .collect(),
                ),
                // 20, 21, 22: lost.
                run(Lost, 3),
            ],
            recv_deltas: vec![
                delta(Small, 250),
                delta(Small, 63_750),
                delta(Small, 0),
                delta(Large, -8_192_000),
                delta(Small, 1_000),
                delta(Large, 8_191_750),
                delta(Small, 500),
                delta(Small, 250),
            ],
        };
        let raw = cc.marshal().expect("marshal");
        let parsed =
            TransportLayerCc::unmarshal(&mut Bytes::from(raw.to_vec())).expect("unmarshal");
        for msg in [&cc, &parsed] {
            let fb = feedback_from_rtcp(msg);
            assert_eq!(fb.base_seq, 65_533);
            assert_eq!(fb.reference_us, 0x12_3456 * 64_000);
            let mut expected = vec![
                Some(250),
                Some(64_000),
                Some(64_000),
                None,
                Some(-8_128_000),
                None,
                Some(-8_127_000),
                Some(64_750),
                None,
                Some(65_250),
            ];
            expected.extend([None; 12]);
            expected.push(Some(65_500));
            expected.extend([None; 3]);
            assert_eq!(fb.arrivals, expected);
        }
    }

    #[test]
    fn symbols_past_the_status_count_are_ignored() {
        // A two-bit vector always carries 7 symbols; only 3 are meant.
        let cc = TransportLayerCc {
            base_sequence_number: 10,
            packet_status_count: 3,
            reference_time: 1,
            packet_chunks: vec![vector(
                SymbolSizeTypeTcc::TwoBit,
                vec![
                    SymbolTypeTcc::PacketReceivedSmallDelta,
                    SymbolTypeTcc::PacketNotReceived,
                    SymbolTypeTcc::PacketReceivedSmallDelta,
                    SymbolTypeTcc::PacketNotReceived,
                    SymbolTypeTcc::PacketNotReceived,
                    SymbolTypeTcc::PacketNotReceived,
                    SymbolTypeTcc::PacketNotReceived,
                ],
            )],
            recv_deltas: vec![
                delta(SymbolTypeTcc::PacketReceivedSmallDelta, 1_000),
                delta(SymbolTypeTcc::PacketReceivedSmallDelta, 2_000),
            ],
            ..Default::default()
        };
        let fb = feedback_from_rtcp(&cc);
        assert_eq!(fb.reference_us, 64_000);
        assert_eq!(fb.arrivals, vec![Some(1_000), None, Some(3_000)]);
    }

    #[test]
    fn missing_chunks_and_deltas_read_as_not_received() {
        let cc = TransportLayerCc {
            base_sequence_number: 0,
            packet_status_count: 5,
            packet_chunks: vec![run(SymbolTypeTcc::PacketReceivedLargeDelta, 3)],
            recv_deltas: vec![delta(SymbolTypeTcc::PacketReceivedLargeDelta, -250)],
            ..Default::default()
        };
        let fb = feedback_from_rtcp(&cc);
        assert_eq!(fb.arrivals, vec![Some(-250), None, None, None, None]);
    }
}
