//! The capture stamp: the wall-clock time a frame was captured, drawn into the frame as a row
//! of black and white blocks along its bottom edge, so a viewer on the same machine can read
//! it back from the decoded picture and measure glass-to-glass latency per frame.
//!
//! The row is [`BLOCKS`] square blocks spanning the whole width, one bit each, most
//! significant first: the start pattern `1010`, the low [`VALUE_BITS`] bits of the time in
//! milliseconds since the Unix epoch, and a CRC-8 of that value. Blocks are big (32 px at
//! 1280 wide) because H.264 at a couple of Mbit/s blurs edges; a reader samples block centres
//! and thresholds at mid grey. `tests/browser/capture_stamp.mjs` is the page-side reader.
//!
//! Pure: the time and the picture memory are passed in.

/// Blocks across the picture.
pub const BLOCKS: usize = 40;
const START_PATTERN: [bool; 4] = [true, false, true, false];
/// Milliseconds kept: 2^28 ms is about 3.1 days, far longer than any latency.
pub const VALUE_BITS: u32 = 28;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
const CRC_BITS: usize = 8;
const LUMA_WHITE: u8 = 235;
const LUMA_BLACK: u8 = 16;
/// Neutral chroma, so the blocks are grey whatever colour was under them.
const CHROMA_GREY: u8 = 128;
#[cfg(test)]
const LUMA_THRESHOLD: u8 = (LUMA_WHITE as u16 / 2 + LUMA_BLACK as u16 / 2) as u8;

const _: () = assert!(START_PATTERN.len() + VALUE_BITS as usize + CRC_BITS == BLOCKS);

/// CRC-8, polynomial x^8 + x^2 + x + 1, over the value's four big-endian bytes.
fn crc8(value: u32) -> u8 {
    let mut crc = 0u8;
    for byte in value.to_be_bytes() {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The blocks for wall-clock time `unix_ms`, left to right; `true` is white.
pub fn encode(unix_ms: u64) -> [bool; BLOCKS] {
    let value = (unix_ms & VALUE_MASK) as u32;
    let mut bits = [false; BLOCKS];
    bits[..START_PATTERN.len()].copy_from_slice(&START_PATTERN);
    let mut at = START_PATTERN.len();
    for i in (0..VALUE_BITS).rev() {
        bits[at] = value >> i & 1 == 1;
        at += 1;
    }
    let crc = crc8(value);
    for i in (0..CRC_BITS).rev() {
        bits[at] = crc >> i & 1 == 1;
        at += 1;
    }
    bits
}

/// The stamped value (low [`VALUE_BITS`] bits of the capture time in ms), or `None` when the
/// blocks do not start with the pattern or fail their checksum. The reading side is here to
/// check the writing side; pages read with `tests/browser/capture_stamp.mjs`.
#[cfg(test)]
pub fn decode(bits: &[bool; BLOCKS]) -> Option<u32> {
    let (start, rest) = bits.split_at(START_PATTERN.len());
    if start != START_PATTERN {
        return None;
    }
    let (value_bits, crc_bits) = rest.split_at(VALUE_BITS as usize);
    let value = value_bits.iter().fold(0u32, |v, &b| v << 1 | u32::from(b));
    let crc = crc_bits.iter().fold(0u8, |v, &b| v << 1 | u8::from(b));
    (crc8(value) == crc).then_some(value)
}

/// Milliseconds from the stamped `value` to wall-clock time `now_unix_ms`, through the
/// wrap-around of the low bits; negative if the stamp is in the future.
#[cfg(test)]
pub fn elapsed_ms(value: u32, now_unix_ms: u64) -> i64 {
    let span = 1i64 << VALUE_BITS;
    let diff = ((now_unix_ms & VALUE_MASK) as i64 - i64::from(value)).rem_euclid(span);
    if diff >= span / 2 { diff - span } else { diff }
}

/// Where the row sits in a `width` × `height` picture: block side and top row, or `None`
/// when the picture is too small to carry it.
pub fn row_geometry(width: usize, height: usize) -> Option<(usize, usize)> {
    let side = width / BLOCKS;
    (side >= 4 && height >= side).then(|| (side, height - side))
}

/// Draws the blocks into an 8-bit luma plane (`stride` bytes per row).
pub fn paint_luma(plane: &mut [u8], stride: usize, width: usize, height: usize, unix_ms: u64) {
    let Some((side, top)) = row_geometry(width, height) else {
        return;
    };
    for (i, white) in encode(unix_ms).into_iter().enumerate() {
        let luma = if white { LUMA_WHITE } else { LUMA_BLACK };
        for row in top..top + side {
            let start = row * stride + i * side;
            if let Some(pixels) = plane.get_mut(start..start + side) {
                pixels.fill(luma);
            }
        }
    }
}

/// Makes the row grey in a chroma plane subsampled by `x_shift`/`y_shift` (1 for 4:2:0).
pub fn paint_chroma(
    plane: &mut [u8],
    stride: usize,
    (width, height): (usize, usize),
    (x_shift, y_shift): (u32, u32),
) {
    let Some((side, top)) = row_geometry(width, height) else {
        return;
    };
    let columns = (BLOCKS * side) >> x_shift;
    for row in top >> y_shift..height.div_ceil(1 << y_shift) {
        let start = row * stride;
        if let Some(pixels) = plane.get_mut(start..start + columns) {
            pixels.fill(CHROMA_GREY);
        }
    }
}

/// Reads the blocks back from a luma plane by their centres, thresholding at mid grey.
#[cfg(test)]
pub fn read_luma(plane: &[u8], stride: usize, width: usize, height: usize) -> Option<u32> {
    let (side, top) = row_geometry(width, height)?;
    let mut bits = [false; BLOCKS];
    for (i, bit) in bits.iter_mut().enumerate() {
        let at = (top + side / 2) * stride + i * side + side / 2;
        *bit = *plane.get(at)? > LUMA_THRESHOLD;
    }
    decode(&bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_342_400_123; // 2026-12-04 00:00:00.123 UTC

    #[test]
    fn a_stamp_decodes_to_the_low_bits_of_its_time() {
        assert_eq!(decode(&encode(NOW)), Some((NOW & VALUE_MASK) as u32));
        assert_eq!(decode(&encode(0)), Some(0));
        assert_eq!(decode(&encode(VALUE_MASK)), Some(VALUE_MASK as u32));
    }

    #[test]
    fn the_layout_is_the_one_the_page_reads() {
        // tests/browser/capture_stamp.test.mjs checks the same string.
        let bits: String = encode(1)
            .iter()
            .map(|&b| if b { '1' } else { '0' })
            .collect();
        assert_eq!(bits, format!("1010{}1{}", "0".repeat(27), "00000111"));
    }

    #[test]
    fn any_single_flipped_block_is_rejected() {
        let bits = encode(NOW);
        for i in 0..BLOCKS {
            let mut damaged = bits;
            damaged[i] = !damaged[i];
            assert_eq!(decode(&damaged), None, "block {i} flipped");
        }
    }

    #[test]
    fn a_picture_without_a_stamp_is_not_read_as_one() {
        assert_eq!(decode(&[false; BLOCKS]), None, "all black");
        assert_eq!(decode(&[true; BLOCKS]), None, "all white");
    }

    #[test]
    fn elapsed_time_crosses_the_wrap_of_the_low_bits() {
        let stamp = encode(VALUE_MASK - 10); // 10 ms before the wrap
        let value = decode(&stamp).unwrap();
        assert_eq!(elapsed_ms(value, VALUE_MASK + 1 + 30), 41);
        assert_eq!(elapsed_ms(value, VALUE_MASK - 10), 0);
    }

    #[test]
    fn a_stamp_from_the_future_is_negative() {
        let value = decode(&encode(NOW)).unwrap();
        assert_eq!(elapsed_ms(value, NOW - 5), -5);
        assert_eq!(elapsed_ms(value, NOW + 250), 250);
    }

    #[test]
    fn a_painted_row_reads_back_from_the_picture() {
        let (width, height, stride) = (1280, 720, 1280 + 64);
        let mut plane = vec![100u8; stride * height];
        paint_luma(&mut plane, stride, width, height, NOW);
        assert_eq!(
            read_luma(&plane, stride, width, height),
            Some((NOW & VALUE_MASK) as u32)
        );
        // Only the bottom 32 rows are touched.
        assert!(plane[..stride * (height - 32)].iter().all(|&p| p == 100));
    }

    #[test]
    fn the_row_is_made_grey_in_subsampled_chroma() {
        let (width, height) = (1280, 720);
        let (cw, ch) = (width / 2, height / 2);
        let mut plane = vec![200u8; cw * ch];
        paint_chroma(&mut plane, cw, (width, height), (1, 1));
        assert!(plane[(ch - 16) * cw..].iter().all(|&p| p == CHROMA_GREY));
        assert!(plane[..(ch - 16) * cw].iter().all(|&p| p == 200));
    }

    #[test]
    fn a_picture_too_narrow_for_the_row_is_left_alone() {
        let mut plane = vec![7u8; 100 * 100];
        paint_luma(&mut plane, 100, 100, 100, NOW);
        assert!(plane.iter().all(|&p| p == 7));
        assert_eq!(read_luma(&plane, 100, 100, 100), None);
    }
}
