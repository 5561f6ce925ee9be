// SafeTensorsDType.swift — the element types of the safetensors format and their bit-level
// conversions to and from Float.
//
// Format reference: the safetensors specification (huggingface/safetensors README): data is
// little-endian, C order. F16 is IEEE 754 binary16; BF16 is the top 16 bits of a binary32;
// F8_E4M3 is the "fn" variant (bias 7, no infinities, S.1111.111 is NaN, max 448);
// F8_E5M2 is the top byte of a binary16.

#if _endian(big)
#error("safetensors data is little-endian; this reader assumes a little-endian host")
#endif

/// An element type of a safetensors file, named by its header code (`"F32"`, `"BF16"`, …).
///
/// The cases are declared in the order of PyPI safetensors' `Dtype` enum (increasing alignment);
/// the writer uses that order to lay tensors out exactly as PyPI's `save_file` does.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case bool = "BOOL"
    case u8 = "U8"
    case i8 = "I8"
    case f8E5M2 = "F8_E5M2"
    case f8E4M3 = "F8_E4M3"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8E5M2, .f8E4M3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// True for the floating-point types (F8_E5M2, F8_E4M3, F16, BF16, F32, F64).
    public var isFloatingPoint: Bool {
        switch self {
        case .f8E5M2, .f8E4M3, .f16, .bf16, .f32, .f64: return true
        default: return false
        }
    }

    /// Position in PyPI safetensors' dtype order (the writer sorts by this, descending).
    var layoutRank: Int { Self.allCases.firstIndex(of: self)! }
}

/// Bit-exact scalar conversions between the stored encodings and Float.
enum ElementConversion {

    /// binary16 → binary32, exact for every input (NaN payloads kept in the top mantissa bits).
    ///
    /// Branch-light form so that loops over it vectorise: shift exponent+mantissa into
    /// place and rebias (127 − 15 = 112); Inf/NaN get the exponent forced to all ones; subnormals
    /// are normalised by letting the FPU subtract 2^−14 from a number built with exponent −14.
    @inline(__always)
    static func halfToFloat(_ h: UInt16) -> Float {
        let shiftedExp: UInt32 = 0x7C00 << 13
        var o = (UInt32(h) & 0x7FFF) << 13
        let exp = shiftedExp & o
        o &+= (127 - 15) << 23
        var f: Float
        if exp == shiftedExp {          // Inf / NaN
            o &+= (128 - 16) << 23
            f = Float(bitPattern: o)
        } else if exp == 0 {            // zero / subnormal
            o &+= 1 << 23
            f = Float(bitPattern: o) - Float(bitPattern: 113 << 23)
        } else {
            f = Float(bitPattern: o)
        }
        f = Float(bitPattern: f.bitPattern | (UInt32(h) & 0x8000) << 16)
        return f
    }

    /// binary32 → binary16, round to nearest, ties to even (overflow gives ±Inf).
    @inline(__always)
    static func floatToHalf(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    /// bfloat16 → binary32: the stored 16 bits are the top half of the binary32.
    @inline(__always)
    static func bfloat16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// binary32 → bfloat16, round to nearest, ties to even:
    /// add 0x7FFF plus the lowest kept bit, then truncate. NaN stays a (quiet) NaN with its sign.
    @inline(__always)
    static func floatToBFloat16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// F8_E5M2 → binary32 (an E5M2 byte is the high byte of a binary16).
    @inline(__always)
    static func f8E5M2ToFloat(_ b: UInt8) -> Float { halfToFloat(UInt16(b) << 8) }

    /// F8_E4M3 ("fn": finite, NaN only) → binary32:
    /// e = bits 6…3, m = bits 2…0; e = 0: ±m/8 · 2^−6; e = 15 and m = 7: NaN; else ±(1 + m/8) · 2^(e−7).
    @inline(__always)
    static func f8E4M3ToFloat(_ b: UInt8) -> Float {
        let sign: Float = b & 0x80 != 0 ? -1 : 1
        let e = Int((b >> 3) & 0x0F)
        let m = Float(b & 0x07)
        if e == 0 { return sign * (m / 8) * 0x1p-6 }
        if e == 15 && b & 0x07 == 7 { return .nan }
        return sign * (1 + m / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
    }
}
