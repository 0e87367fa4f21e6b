//! The camera pixel formats and their conversion to RGBA: packed YUYV
//! (4:2:2), NV12 (4:2:0, a Y plane then interleaved U/V) and MJPEG (one
//! JPEG a frame, decoded by the `image` crate; the Huffman tables USB
//! cameras leave out are the JPEG standard's defaults, which the decoder
//! supplies for a frame marked Motion-JPEG), and [`JpegSplitter`], which cuts a stream of concatenated
//! JPEG images into frames.
//!
//! YUYV and NV12 are BT.601 "studio swing" (Y in 16..=235, chroma in
//! 16..=240), what UVC webcams send; the conversion is fixed-point
//! (8 fractional bits), saturating.

use std::io::{BufRead, ErrorKind};

use crate::error::{AutoGazeError, CameraProblem, Result};

crate::names::named_enum! {
    /// A camera pixel format, as named on the command line.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum CameraFormat ("camera format") {
        /// Motion JPEG: one JPEG image a frame.
        Mjpeg => "mjpeg",
        /// Packed 4:2:2: `Y0 U Y1 V` for each pair of pixels.
        Yuyv => "yuyv",
        /// 4:2:0: the Y plane, then one row of interleaved `U V` pairs for
        /// each two rows.
        Nv12 => "nv12",
    }
}

impl CameraFormat {
    /// FFmpeg's name of the format (`-input_format`, and what it prints
    /// for a stream).
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Self::Mjpeg => "mjpeg",
            Self::Yuyv => "yuyv422",
            Self::Nv12 => "nv12",
        }
    }

    /// The format FFmpeg names `name` (a codec or a pixel format), if it is
    /// one of these.
    pub fn from_ffmpeg(name: &str) -> Option<Self> {
        match name {
            "mjpeg" => Some(Self::Mjpeg),
            "yuyv422" => Some(Self::Yuyv),
            "nv12" => Some(Self::Nv12),
            _ => None,
        }
    }

    /// Bytes of one raw frame of `width` x `height` (none for MJPEG, whose
    /// frames vary).
    pub fn raw_frame_len(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        match self {
            Self::Mjpeg => None,
            Self::Yuyv => Some(w.div_ceil(2) * 4 * h),
            Self::Nv12 => Some(w * h + w.div_ceil(2) * 2 * h.div_ceil(2)),
        }
    }
}

fn format_error(reason: String) -> AutoGazeError {
    AutoGazeError::camera("frame", CameraProblem::Capture { reason })
}

fn check_lengths(what: &str, src: usize, want: usize, dst: usize, dst_want: usize) -> Result<()> {
    if src != want || dst != dst_want {
        return Err(format_error(format!(
            "a {what} frame of {src} bytes into {dst} RGBA bytes (expected {want} into {dst_want})"
        )));
    }
    Ok(())
}

/// One BT.601 studio-swing YUV sample as RGBA.
#[inline]
pub fn yuv_to_rgba(y: u8, u: u8, v: u8) -> [u8; 4] {
    let c = 298 * (y as i32 - 16);
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clip(c + 409 * e),
        clip(c - 100 * d - 208 * e),
        clip(c + 516 * d),
        255,
    ]
}

/// Packed YUYV (`Y0 U Y1 V`; an odd width's last pair has one pixel) to
/// RGBA. `rgba` must hold `width * height * 4` bytes.
pub fn yuyv_to_rgba(src: &[u8], width: u32, height: u32, rgba: &mut [u8]) -> Result<()> {
    let (w, h) = (width as usize, height as usize);
    let want = CameraFormat::Yuyv.raw_frame_len(width, height).unwrap_or(0);
    check_lengths("YUYV", src.len(), want, rgba.len(), w * h * 4)?;
    let stride = w.div_ceil(2) * 4;
    for (row, out) in src.chunks_exact(stride).zip(rgba.chunks_exact_mut(w * 4)) {
        for (x, px) in out.chunks_exact_mut(4).enumerate() {
            let pair = &row[(x / 2) * 4..(x / 2) * 4 + 4];
            let y = pair[(x % 2) * 2];
            px.copy_from_slice(&yuv_to_rgba(y, pair[1], pair[3]));
        }
    }
    Ok(())
}

/// NV12 (a `width x height` Y plane, then `ceil(h/2)` rows of
/// `ceil(w/2)` interleaved `U V` pairs) to RGBA.
pub fn nv12_to_rgba(src: &[u8], width: u32, height: u32, rgba: &mut [u8]) -> Result<()> {
    let (w, h) = (width as usize, height as usize);
    let want = CameraFormat::Nv12.raw_frame_len(width, height).unwrap_or(0);
    check_lengths("NV12", src.len(), want, rgba.len(), w * h * 4)?;
    let (luma, chroma) = src.split_at(w * h);
    let chroma_stride = w.div_ceil(2) * 2;
    for (r, out) in rgba.chunks_exact_mut(w * 4).enumerate() {
        let ys = &luma[r * w..(r + 1) * w];
        let uv = &chroma[(r / 2) * chroma_stride..(r / 2 + 1) * chroma_stride];
        for (x, px) in out.chunks_exact_mut(4).enumerate() {
            let c = (x / 2) * 2;
            px.copy_from_slice(&yuv_to_rgba(ys[x], uv[c], uv[c + 1]));
        }
    }
    Ok(())
}

/// The size of a JPEG image (its frame header), without decoding it.
pub fn jpeg_size(jpeg: &[u8]) -> Result<(u32, u32)> {
    use image::ImageDecoder;
    let decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(jpeg))
        .map_err(|e| format_error(format!("an MJPEG frame does not decode: {e}")))?;
    Ok(decoder.dimensions())
}

/// Whether a JPEG carries Huffman tables (a DHT segment before its first
/// scan).
fn has_huffman_tables(jpeg: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        match jpeg[i + 1] {
            0xC4 => return true,
            0xDA => return false,
            0xFF => i += 1,
            _ => i += 2 + ((jpeg[i + 2] as usize) << 8 | jpeg[i + 3] as usize),
        }
    }
    false
}

/// An `APP0 "AVI1"` segment: the mark of a Motion-JPEG frame, which tells
/// the decoder (zune-jpeg, under `image`) to use the JPEG standard's
/// Huffman tables (ISO 10918-1 Annex K) where the frame has none.
const AVI1_APP0: [u8; 9] = [0xFF, 0xE0, 0x00, 0x07, b'A', b'V', b'I', b'1', 0x00];

/// Decodes MJPEG frames to RGBA, keeping its buffers between frames.
#[derive(Debug, Default)]
pub struct MjpegDecoder {
    /// The decoder's RGB or grey output.
    decoded: Vec<u8>,
    /// A frame without Huffman tables, marked as Motion-JPEG.
    patched: Vec<u8>,
}

impl MjpegDecoder {
    /// Decodes one frame into `rgba` (`width * height * 4` bytes, the size
    /// the camera announced). A frame of another size, or one that does
    /// not decode, is an error.
    pub fn decode(&mut self, jpeg: &[u8], width: u32, height: u32, rgba: &mut [u8]) -> Result<()> {
        use image::ImageDecoder;
        let jpeg = if jpeg.starts_with(&[0xFF, 0xD8]) && !has_huffman_tables(jpeg) {
            self.patched.clear();
            self.patched.extend_from_slice(&jpeg[..2]);
            self.patched.extend_from_slice(&AVI1_APP0);
            self.patched.extend_from_slice(&jpeg[2..]);
            &self.patched[..]
        } else {
            jpeg
        };
        let bad =
            |e: image::ImageError| format_error(format!("an MJPEG frame does not decode: {e}"));
        let mut decoder =
            image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(jpeg)).map_err(bad)?;
        let (w, h) = decoder.dimensions();
        if (w, h) != (width, height) {
            return Err(format_error(format!(
                "an MJPEG frame of {w}x{h} in a {width}x{height} stream"
            )));
        }
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(crate::limits::MAX_VIDEO_SIDE);
        limits.max_image_height = Some(crate::limits::MAX_VIDEO_SIDE);
        decoder.set_limits(limits).map_err(bad)?;
        let color = decoder.color_type();
        self.decoded.resize(decoder.total_bytes() as usize, 0);
        decoder.read_image(&mut self.decoded).map_err(bad)?;
        let pixels = w as usize * h as usize;
        check_lengths("MJPEG", rgba.len(), pixels * 4, rgba.len(), rgba.len())?;
        match color {
            image::ColorType::Rgb8 => {
                for (px, rgb) in rgba.chunks_exact_mut(4).zip(self.decoded.chunks_exact(3)) {
                    px.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
                }
            }
            image::ColorType::L8 => {
                for (px, &l) in rgba.chunks_exact_mut(4).zip(self.decoded.iter()) {
                    px.copy_from_slice(&[l, l, l, 255]);
                }
            }
            other => {
                return Err(format_error(format!(
                    "an MJPEG frame decodes to {other:?}, not RGB or grey"
                )));
            }
        }
        Ok(())
    }
}

/// Cuts a byte stream of concatenated JPEG images (FFmpeg's `mjpeg`
/// muxer, a camera's MJPEG packets) into images, by their markers: the
/// segments after SOI by their lengths, the entropy-coded data after SOS
/// up to the next marker that is not a stuffed `FF 00` or a restart
/// marker, until EOI. Bytes before an SOI are skipped; an image longer
/// than the cap is an error (no unbounded growth on a broken stream).
#[derive(Debug)]
pub struct JpegSplitter {
    cap: usize,
}

impl JpegSplitter {
    /// A splitter refusing images over `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self { cap }
    }

    /// Reads the next image into `out` (cleared first): `Ok(false)` at a
    /// clean end of the stream (no partial image), an error on a stream
    /// that ends inside an image, or an image over the cap.
    pub fn next(&self, reader: &mut impl BufRead, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        // Find SOI.
        let mut prev = 0u8;
        loop {
            let Some(b) = byte(reader)? else {
                return Ok(false);
            };
            if prev == 0xFF && b == 0xD8 {
                out.extend_from_slice(&[0xFF, 0xD8]);
                break;
            }
            prev = b;
        }
        let mut in_scan = false;
        loop {
            let b = self.take(reader, out)?;
            if b != 0xFF {
                if in_scan {
                    continue;
                }
                return Err(format_error(format!(
                    "an MJPEG frame has byte {b:#04x} where a marker belongs"
                )));
            }
            // A marker (fill bytes FF FF... are allowed before it).
            let mut m = self.take(reader, out)?;
            while m == 0xFF {
                m = self.take(reader, out)?;
            }
            match m {
                0x00 | 0xD0..=0xD7 if in_scan => {} // stuffed byte, restart
                0xD9 => return Ok(true),            // EOI
                0x01 | 0xD0..=0xD7 => {}            // no length
                _ => {
                    let hi = self.take(reader, out)? as usize;
                    let lo = self.take(reader, out)? as usize;
                    let len = (hi << 8) | lo;
                    if len < 2 {
                        return Err(format_error(format!(
                            "an MJPEG segment {m:#04x} of length {len}"
                        )));
                    }
                    for _ in 0..len - 2 {
                        self.take(reader, out)?;
                    }
                    in_scan = m == 0xDA;
                }
            }
        }
    }

    /// The next byte of an image, appended to `out`.
    fn take(&self, reader: &mut impl BufRead, out: &mut Vec<u8>) -> Result<u8> {
        let b = byte(reader)?
            .ok_or_else(|| format_error("the MJPEG stream ended inside a frame".into()))?;
        if out.len() >= self.cap {
            return Err(format_error(format!(
                "an MJPEG frame longer than {} bytes",
                self.cap
            )));
        }
        out.push(b);
        Ok(b)
    }
}

/// One byte of `reader` (`None` at its end).
#[inline]
fn byte(reader: &mut impl BufRead) -> Result<Option<u8>> {
    loop {
        match reader.fill_buf() {
            Ok([]) => return Ok(None),
            Ok(buf) => {
                let b = buf[0];
                reader.consume(1);
                return Ok(Some(b));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format_error(format!("reading the camera stream: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 studio-swing references: black, white, grey and the
    /// primaries (ITU-R BT.601 75 %-free colour bars, rounded).
    const KNOWN: [([u8; 3], [u8; 3]); 6] = [
        ([16, 128, 128], [0, 0, 0]),
        ([235, 128, 128], [255, 255, 255]),
        ([126, 128, 128], [128, 128, 128]),
        ([81, 90, 240], [255, 0, 0]),
        ([145, 54, 34], [0, 255, 0]),
        ([41, 240, 110], [0, 0, 255]),
    ];

    fn close(a: [u8; 4], b: [u8; 3]) -> bool {
        a[3] == 255 && (0..3).all(|i| (a[i] as i32 - b[i] as i32).abs() <= 1)
    }

    #[test]
    fn yuv_samples_convert_to_their_known_colours() {
        for (yuv, rgb) in KNOWN {
            let got = yuv_to_rgba(yuv[0], yuv[1], yuv[2]);
            assert!(close(got, rgb), "{yuv:?} -> {got:?}, expected {rgb:?}");
        }
        // Saturation, not wrap-around, beyond the studio range.
        assert_eq!(yuv_to_rgba(0, 128, 128), [0, 0, 0, 255]);
        assert_eq!(yuv_to_rgba(255, 128, 128), [255, 255, 255, 255]);
    }

    #[test]
    fn yuyv_pairs_share_chroma_and_odd_widths_are_padded() {
        // 3x2: row 0 is red, red | white; row 1 black, black | blue.
        let [r, w, k, b] = [KNOWN[3].0, KNOWN[1].0, KNOWN[0].0, KNOWN[5].0];
        let src = [
            [r[0], r[1], r[0], r[2]],
            [w[0], w[1], 0, w[2]],
            [k[0], k[1], k[0], k[2]],
            [b[0], b[1], 0, b[2]],
        ]
        .concat();
        assert_eq!(CameraFormat::Yuyv.raw_frame_len(3, 2), Some(src.len()));
        let mut rgba = vec![0u8; 3 * 2 * 4];
        yuyv_to_rgba(&src, 3, 2, &mut rgba).unwrap();
        let px = |i: usize| {
            [
                rgba[i * 4],
                rgba[i * 4 + 1],
                rgba[i * 4 + 2],
                rgba[i * 4 + 3],
            ]
        };
        let want = [
            KNOWN[3].1, KNOWN[3].1, KNOWN[1].1, KNOWN[0].1, KNOWN[0].1, KNOWN[5].1,
        ];
        for (i, rgb) in want.into_iter().enumerate() {
            assert!(close(px(i), rgb), "pixel {i}: {:?} vs {rgb:?}", px(i));
        }
        let err = yuyv_to_rgba(&src[1..], 3, 2, &mut rgba).unwrap_err();
        assert!(err.to_string().contains("YUYV frame of 15 bytes"), "{err}");
    }

    #[test]
    fn nv12_chroma_covers_two_by_two_blocks() {
        // 3x3 (odd both ways): chroma is 2x2 pairs.
        let (w, h) = (3u32, 3u32);
        let ys = [81, 81, 235, 81, 81, 235, 16, 16, 41];
        // Blocks: (0,0) red chroma, (1,0) grey, (0,1) grey, (1,1) blue.
        let uv = [90, 240, 128, 128, 128, 128, 240, 110];
        let src = [&ys[..], &uv[..]].concat();
        assert_eq!(CameraFormat::Nv12.raw_frame_len(w, h), Some(src.len()));
        let mut rgba = vec![0u8; 9 * 4];
        nv12_to_rgba(&src, w, h, &mut rgba).unwrap();
        let px = |i: usize| {
            [
                rgba[i * 4],
                rgba[i * 4 + 1],
                rgba[i * 4 + 2],
                rgba[i * 4 + 3],
            ]
        };
        let (red, white, black, blue) = (KNOWN[3].1, KNOWN[1].1, KNOWN[0].1, KNOWN[5].1);
        let want = [red, red, white, red, red, white, black, black, blue];
        for (i, rgb) in want.into_iter().enumerate() {
            assert!(close(px(i), rgb), "pixel {i}: {:?} vs {rgb:?}", px(i));
        }
        assert!(nv12_to_rgba(&src, w, h, &mut rgba[4..]).is_err());
    }

    /// A JPEG of a solid colour, with its Huffman tables cut out when
    /// `strip_dht` (as USB cameras send MJPEG).
    fn solid_jpeg(w: u32, h: u32, rgb: [u8; 3], strip_dht: bool) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&img)
            .unwrap();
        if !strip_dht {
            return jpeg;
        }
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while jpeg[i + 1] != 0xDA {
            let len = ((jpeg[i + 2] as usize) << 8) | jpeg[i + 3] as usize;
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[i..]);
        assert!(out.len() < jpeg.len(), "the encoder wrote Huffman tables");
        out
    }

    #[test]
    fn mjpeg_frames_decode_with_and_without_huffman_tables() {
        let mut decoder = MjpegDecoder::default();
        for strip in [false, true] {
            let jpeg = solid_jpeg(24, 16, [200, 40, 90], strip);
            assert_eq!(jpeg_size(&jpeg).unwrap(), (24, 16));
            let mut rgba = vec![0u8; 24 * 16 * 4];
            decoder.decode(&jpeg, 24, 16, &mut rgba).unwrap();
            for px in rgba.chunks_exact(4) {
                assert!(close(px.try_into().unwrap(), [200, 40, 90]), "{px:?}");
            }
            let err = decoder.decode(&jpeg, 16, 16, &mut rgba).unwrap_err();
            assert!(err.to_string().contains("24x16 in a 16x16"), "{err}");
        }
        let err = decoder
            .decode(b"not a jpeg", 2, 2, &mut [0; 16])
            .unwrap_err();
        assert!(err.to_string().contains("does not decode"), "{err}");
    }

    #[test]
    fn a_jpeg_stream_splits_into_its_images() {
        let a = solid_jpeg(8, 8, [255, 0, 0], false);
        let b = solid_jpeg(16, 8, [0, 0, 255], true);
        // Junk before the first image is skipped.
        let stream = [&b"\x00\x12"[..], &a, &b, &a].concat();
        let mut reader = std::io::BufReader::with_capacity(7, &stream[..]);
        let splitter = JpegSplitter::new(1 << 20);
        let mut out = Vec::new();
        for want in [&a, &b, &a] {
            assert!(splitter.next(&mut reader, &mut out).unwrap());
            assert_eq!(&out, want);
        }
        assert!(!splitter.next(&mut reader, &mut out).unwrap());
        // Cut inside an image: an error, not a short frame.
        let cut = &a[..a.len() - 3];
        let err = splitter.next(&mut &cut[..], &mut out).unwrap_err();
        assert!(err.to_string().contains("ended inside"), "{err}");
        // Over the cap.
        let err = JpegSplitter::new(64)
            .next(&mut &a[..], &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("longer than 64"), "{err}");
    }
}
