// A colour emoji font read through FreeType and shaped through HarfBuzz: code point sequence →
// one glyph → its BGRA bitmap.
//
// 1. FreeType opens the font (FT_New_Face) and selects its largest bitmap strike (FT_Select_Size);
//    Noto Color Emoji has one, 109 ppem, whose glyphs are 136×128 PNGs in the CBDT table.
// 2. HarfBuzz shapes the sequence on that face (hb_ft_font_create_referenced): the font's GSUB
//    ligatures turn ZWJ sequences (👨‍👩‍👧), flags (🇩🇪 = two regional indicators), keycaps (1️⃣ =
//    1 FE0F 20E3) and skin-tone modifiers (👍🏽) into a single glyph. Anything but exactly one glyph
//    — a sequence the font does not ligate, or glyph 0 (.notdef) — is an error naming the emoji.
// 3. FreeType loads that glyph with FT_LOAD_COLOR, which decodes the strike's PNG into a
//    FT_PIXEL_MODE_BGRA bitmap: B, G, R, A bytes, alpha premultiplied, top row first.
//
// Only this file touches FreeType and HarfBuzz. An EmojiFont is not thread-safe: use one per thread.

import CFreeType
import CHarfBuzz

/// A colour bitmap emoji font (see the file header).
public final class EmojiFont {
    /// Debian's location, from the fonts-noto-color-emoji package.
    public static let debianPath = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"

    /// The font file.
    public let path: String
    /// The selected strike's nominal glyph size in pixels (Noto Color Emoji: 136×128).
    public let strikeWidth: Int, strikeHeight: Int

    private let library: FT_Library
    private let face: FT_Face
    private let font: OpaquePointer  // hb_font_t *, holding its own reference to `face`

    /// Opens the font at `path` and selects its largest bitmap strike.
    public init(path: String) throws {
        self.path = path
        var library: FT_Library?
        var status = FT_Init_FreeType(&library)
        guard status == 0, let library else { throw EmojiDatasetError.fontError(path, reason: Self.message(status)) }
        var face: FT_Face?
        status = FT_New_Face(library, path, 0, &face)
        guard status == 0, let face else {
            FT_Done_FreeType(library)
            throw EmojiDatasetError.fontError(path, reason: Self.message(status))
        }
        // The largest strike: the most detail for the downsampler to average.
        let sizes = Int(face.pointee.num_fixed_sizes)
        let strike = (0..<sizes).max { face.pointee.available_sizes[$0].height < face.pointee.available_sizes[$1].height }
        guard face.pointee.face_flags & FT_Long(FT_FACE_FLAG_COLOR) != 0, let strike else {
            FT_Done_Face(face)
            FT_Done_FreeType(library)
            throw EmojiDatasetError.notAColourBitmapFont(path)
        }
        status = FT_Select_Size(face, FT_Int(strike))
        guard status == 0, let font = hb_ft_font_create_referenced(face) else {
            FT_Done_Face(face)
            FT_Done_FreeType(library)
            throw EmojiDatasetError.fontError(path, reason: status == 0 ? "HarfBuzz cannot use the face" : Self.message(status))
        }
        self.library = library
        self.face = face
        self.font = font
        strikeWidth = Int(face.pointee.available_sizes[strike].width)
        strikeHeight = Int(face.pointee.available_sizes[strike].height)
    }

    deinit {
        hb_font_destroy(font)
        FT_Done_Face(face)
        FT_Done_FreeType(library)
    }

    /// The one glyph HarfBuzz shapes `entry`'s code points to. Throws when they shape to no glyph
    /// in the font or to more than one.
    public func glyph(for entry: EmojiEntry) throws -> UInt32 {
        guard let buffer = hb_buffer_create() else {
            throw EmojiDatasetError.glyphUnavailable(name: entry.name, reason: "HarfBuzz could not allocate a buffer")
        }
        defer { hb_buffer_destroy(buffer) }
        let codepoints = entry.codepoints.map(\.value)
        hb_buffer_add_codepoints(buffer, codepoints, Int32(codepoints.count), 0, Int32(codepoints.count))
        hb_buffer_guess_segment_properties(buffer)
        hb_shape(font, buffer, nil, 0)
        guard hb_buffer_allocation_successful(buffer) != 0 else {
            throw EmojiDatasetError.glyphUnavailable(name: entry.name, reason: "HarfBuzz ran out of memory shaping it")
        }
        var count: UInt32 = 0
        let infos = hb_buffer_get_glyph_infos(buffer, &count)
        guard count == 1, let glyph = infos?[0].codepoint, glyph != 0 else {
            throw EmojiDatasetError.notOneGlyph(name: entry.name, codepoints: entry.codepointsText,
                                                glyphs: count == 1 ? 0 : Int(count))
        }
        return glyph
    }

    /// The colour bitmap of glyph `glyph` (from `glyph(for:)`); `name` names the emoji in errors.
    public func bitmap(glyph: UInt32, name: String) throws -> EmojiBitmap {
        let status = FT_Load_Glyph(face, glyph, FT_Int32(FT_LOAD_COLOR))
        guard status == 0 else { throw EmojiDatasetError.glyphUnavailable(name: name, reason: Self.message(status)) }
        let slot = face.pointee.glyph.pointee
        let bitmap = slot.bitmap
        let width = Int(bitmap.width), height = Int(bitmap.rows), pitch = Int(bitmap.pitch)
        guard slot.format == FT_GLYPH_FORMAT_BITMAP, UInt32(bitmap.pixel_mode) == FT_PIXEL_MODE_BGRA.rawValue else {
            throw EmojiDatasetError.glyphUnavailable(name: name, reason: "the font gives no colour bitmap for it")
        }
        guard width > 0, height > 0, pitch >= width * 4, let buffer = bitmap.buffer else {
            throw EmojiDatasetError.glyphUnavailable(name: name, reason: "its bitmap is empty or laid out bottom-up")
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        for y in 0..<height {
            for i in 0..<(width * 4) { pixels[y * width * 4 + i] = buffer[y * pitch + i] }
        }
        return EmojiBitmap(width: width, height: height, pixels: pixels)
    }

    /// The colour bitmap `entry` is drawn with: `glyph(for:)`, then `bitmap(glyph:name:)`.
    public func bitmap(for entry: EmojiEntry) throws -> EmojiBitmap {
        try bitmap(glyph: glyph(for: entry), name: entry.name)
    }

    /// FreeType's text for an error code (when FreeType was built with its error strings), else
    /// the common ones in words, else the number.
    private static func message(_ status: FT_Error) -> String {
        if let text = FT_Error_String(status) { return String(cString: text) }
        switch Int(status) {
        case FT_Err_Cannot_Open_Resource: return "cannot open the file"
        case FT_Err_Unknown_File_Format: return "not a font file FreeType reads"
        case FT_Err_Invalid_File_Format: return "the font file is damaged"
        default: return "FreeType error \(status)"
        }
    }
}
