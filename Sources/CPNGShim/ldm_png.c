/*
 * ldm_png.c — PNG decode/encode through libpng, with every setjmp and every libpng callback
 * kept on the C side (see ldm_png.h).
 *
 * Structure: each public function prepares its state in a struct, then calls one "run"
 * function that does setjmp and all libpng calls. When libpng fails, our error callback copies
 * the message and longjmps back into that run function, which returns an error code; the
 * public function then frees whatever the struct holds. The run functions keep their state only
 * in the struct (reached through a pointer that never changes), so nothing they need after a
 * longjmp lives in a non-volatile local.
 */
#include "ldm_png.h"

#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------------- */

/* What the error and warning callbacks write into. First member of the reader and writer
 * states, so the callbacks can reach it through libpng's error pointer. */
typedef struct {
    char *message;              /* caller's buffer, may be NULL */
    size_t message_capacity;
    int status;                 /* LDM_PNG_ERROR_* once something failed */
    char warnings[512];         /* libpng's warnings, "; "-separated, for context */
    size_t warnings_length;
} ldm_png_report;

static void report_set(ldm_png_report *report, int status, const char *format, ...) {
    report->status = status;
    if (report->message == NULL || report->message_capacity == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(report->message, report->message_capacity, format, args);
    va_end(args);
}

static void on_png_error(png_structp png, png_const_charp text) {
    ldm_png_report *report = (ldm_png_report *)png_get_error_ptr(png);
    if (report->status == LDM_PNG_OK) {
        const char *message = text != NULL ? text : "unknown libpng error";
        /* libpng's IHDR check issues one warning per bad field, then this generic error:
         * keep the specific reasons in the message. */
        if (strcmp(message, "Invalid IHDR data") == 0 && report->warnings_length > 0) {
            report_set(report, LDM_PNG_ERROR_FORMAT, "%s: %s", message, report->warnings);
        } else {
            report_set(report, LDM_PNG_ERROR_FORMAT, "%s", message);
        }
    }
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp text) {
    ldm_png_report *report = (ldm_png_report *)png_get_error_ptr(png);
    if (text == NULL) return;
    size_t used = report->warnings_length;
    size_t room = sizeof(report->warnings) - used;
    if (room <= 1) return;
    int written = snprintf(report->warnings + used, room, "%s%s", used > 0 ? "; " : "", text);
    if (written > 0) {
        size_t added = (size_t)written < room ? (size_t)written : room - 1;
        report->warnings_length = used + added;
    }
}

/* Records our own failure (status and formatted message), then unwinds through libpng's error
 * path. Only called inside a run function, after its setjmp. */
static void fail(png_structp png, ldm_png_report *report, int status, const char *format, ...) {
    if (report->message != NULL && report->message_capacity > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(report->message, report->message_capacity, format, args);
        va_end(args);
    }
    report->status = status;
    png_longjmp(png, 1);
}

/* ---------------------------------------------------------------------------------------------
 * Text encodings
 * ------------------------------------------------------------------------------------------- */

/* Latin-1 bytes -> NUL-terminated UTF-8 (code points 0x80-0xFF take two bytes). */
static char *latin1_to_utf8(const char *latin1, size_t length, size_t *out_length) {
    size_t needed = 0;
    for (size_t i = 0; i < length; i++) needed += ((unsigned char)latin1[i] < 0x80) ? 1 : 2;
    char *utf8 = (char *)malloc(needed + 1);
    if (utf8 == NULL) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)latin1[i];
        if (c < 0x80) {
            utf8[j++] = (char)c;
        } else {
            utf8[j++] = (char)(0xC0 | (c >> 6));
            utf8[j++] = (char)(0x80 | (c & 0x3F));
        }
    }
    utf8[j] = '\0';
    *out_length = j;
    return utf8;
}

/* Copies bytes into a new NUL-terminated buffer. */
static char *copy_bytes(const char *bytes, size_t length) {
    char *copy = (char *)malloc(length + 1);
    if (copy == NULL) return NULL;
    if (length > 0) memcpy(copy, bytes, length);
    copy[length] = '\0';
    return copy;
}

/* Decodes one code point of strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
 * Returns 0 on malformed input. */
static int utf8_next(const unsigned char *s, size_t length, size_t *index, uint32_t *code_point) {
    size_t i = *index;
    unsigned char c = s[i];
    uint32_t cp;
    size_t extra;
    if (c < 0x80) { cp = c; extra = 0; }
    else if (c >= 0xC2 && c <= 0xDF) { cp = c & 0x1F; extra = 1; }
    else if (c >= 0xE0 && c <= 0xEF) { cp = c & 0x0F; extra = 2; }
    else if (c >= 0xF0 && c <= 0xF4) { cp = c & 0x07; extra = 3; }
    else return 0;
    if (extra > length - i - 1) return 0;      /* i < length, so this cannot underflow */
    for (size_t k = 1; k <= extra; k++) {
        unsigned char t = s[i + k];
        if ((t & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (t & 0x3F);
    }
    if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    *index = i + extra + 1;
    *code_point = cp;
    return 1;
}

/* Classifies UTF-8: returns -1 if malformed, 1 if every code point is <= U+00FF (Latin-1),
 * 0 otherwise. Sets *has_nul when U+0000 occurs. */
static int utf8_latin1_class(const char *utf8, size_t length, int *has_nul) {
    const unsigned char *s = (const unsigned char *)utf8;
    int latin1 = 1;
    *has_nul = 0;
    size_t i = 0;
    while (i < length) {
        uint32_t cp;
        if (!utf8_next(s, length, &i, &cp)) return -1;
        if (cp == 0) *has_nul = 1;
        if (cp > 0xFF) latin1 = 0;
    }
    return latin1;
}

/* UTF-8 whose code points are all <= U+00FF -> NUL-terminated Latin-1. */
static char *utf8_to_latin1(const char *utf8, size_t length) {
    const unsigned char *s = (const unsigned char *)utf8;
    char *latin1 = (char *)malloc(length + 1);
    if (latin1 == NULL) return NULL;
    size_t i = 0, j = 0;
    while (i < length) {
        uint32_t cp = 0;
        if (!utf8_next(s, length, &i, &cp) || cp > 0xFF) { free(latin1); return NULL; }
        latin1[j++] = (char)cp;
    }
    latin1[j] = '\0';
    return latin1;
}

/* PNG keyword rule: 1-79 Latin-1 printable characters (32-126, 161-255), no leading or
 * trailing space, no two consecutive spaces. */
static int keyword_is_valid(const char *latin1) {
    size_t length = strlen(latin1);
    if (length < 1 || length > 79) return 0;
    if (latin1[0] == ' ' || latin1[length - 1] == ' ') return 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)latin1[i];
        if (!((c >= 32 && c <= 126) || c >= 161)) return 0;
        if (c == ' ' && i > 0 && latin1[i - 1] == ' ') return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    ldm_png_report report;      /* must stay first: it is libpng's error pointer */
    const uint8_t *data;
    size_t size;
    size_t offset;
    png_structp png;
    png_infop info;
    png_bytep *rows;            /* row pointers into out->pixels */
    png_bytep scratch_row;      /* single row when pixels are not kept */
    ldm_png_image *out;
} ldm_png_reader;

static void on_png_read(png_structp png, png_bytep destination, size_t length) {
    ldm_png_reader *reader = (ldm_png_reader *)png_get_io_ptr(png);
    if (length > reader->size - reader->offset) {
        png_error(png, "file is truncated (unexpected end of data)");
    }
    memcpy(destination, reader->data + reader->offset, length);
    reader->offset += length;
}

static const char *color_type_name(int color_type) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return "gray";
    case PNG_COLOR_TYPE_RGB: return "RGB";
    case PNG_COLOR_TYPE_PALETTE: return "palette";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return "gray+alpha";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
    default: return "unknown";
    }
}

/* Copies libpng's text chunks into reader->out->texts as UTF-8. */
static void copy_texts(ldm_png_reader *reader) {
    png_structp png = reader->png;
    png_textp texts = NULL;
    int count = png_get_text(png, reader->info, &texts, NULL);
    if (count <= 0 || texts == NULL) return;
    reader->out->texts = (ldm_png_text *)calloc((size_t)count, sizeof(ldm_png_text));
    if (reader->out->texts == NULL) fail(png, &reader->report, LDM_PNG_ERROR_MEMORY, "out of memory");
    for (int i = 0; i < count; i++) {
        const png_text *source = &texts[i];
        ldm_png_text *target = &reader->out->texts[i];
        reader->out->text_count = (size_t)i + 1;   /* so ldm_png_image_free sees partial work */
        const char *key = source->key != NULL ? source->key : "";
        const char *text = source->text != NULL ? source->text : "";
        /* Keywords are Latin-1 in all three chunk types. */
        target->keyword = latin1_to_utf8(key, strlen(key), &target->keyword_length);
        if (source->compression == PNG_TEXT_COMPRESSION_NONE ||
            source->compression == PNG_TEXT_COMPRESSION_zTXt) {
            target->kind = source->compression == PNG_TEXT_COMPRESSION_NONE
                ? LDM_PNG_TEXT_TEXT : LDM_PNG_TEXT_ZTXT;
            target->text = latin1_to_utf8(text, source->text != NULL ? source->text_length : 0,
                                          &target->text_length);
        } else {
            target->kind = LDM_PNG_TEXT_ITXT;
            target->text_length = source->text != NULL ? source->itxt_length : 0;
            target->text = copy_bytes(text, target->text_length);
        }
        if (target->keyword == NULL || target->text == NULL) {
            fail(png, &reader->report, LDM_PNG_ERROR_MEMORY, "out of memory");
        }
    }
}

static int decode_run(ldm_png_reader *reader, int want_pixels) {
    png_structp png = reader->png;      /* both set before setjmp and never changed */
    png_infop info = reader->info;
    if (setjmp(png_jmpbuf(png))) {
        return reader->report.status != LDM_PNG_OK ? reader->report.status : LDM_PNG_ERROR_FORMAT;
    }

    png_set_read_fn(png, reader, on_png_read);
    png_set_user_limits(png, LDM_PNG_MAX_DIMENSION, LDM_PNG_MAX_DIMENSION);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    reader->out->width = width;
    reader->out->height = height;
    reader->out->bit_depth = bit_depth;
    reader->out->color_type = color_type;
    reader->out->interlace = interlace != PNG_INTERLACE_NONE ? 1 : 0;
    if ((uint64_t)width * (uint64_t)height > LDM_PNG_MAX_PIXELS) {
        fail(png, &reader->report, LDM_PNG_ERROR_LIMIT,
             "image is too large: %lux%lu pixels (the limit is %llu pixels)",
             (unsigned long)width, (unsigned long)height, (unsigned long long)LDM_PNG_MAX_PIXELS);
    }

    /* To 8-bit RGBA with the values the PNG specification defines; no gamma handling. */
    int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (has_trns) png_set_tRNS_to_alpha(png);      /* compares the samples before any scaling */
    if (bit_depth == 16) png_set_scale_16(png);     /* v8 = round(v16 * 255 / 65535) */
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
    if ((color_type & PNG_COLOR_MASK_ALPHA) == 0 && !has_trns) {
        png_set_add_alpha(png, 0xFF, PNG_FILLER_AFTER);
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t row_bytes = (size_t)width * 4;
    if (png_get_rowbytes(png, info) != row_bytes || png_get_bit_depth(png, info) != 8) {
        fail(png, &reader->report, LDM_PNG_ERROR_FORMAT,
             "internal error: %s %d-bit image did not convert to 8-bit RGBA",
             color_type_name(color_type), bit_depth);
    }

    if (want_pixels) {
        reader->out->pixels = (uint8_t *)malloc(row_bytes * (size_t)height);
        reader->rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
        if (reader->out->pixels == NULL || reader->rows == NULL) {
            fail(png, &reader->report, LDM_PNG_ERROR_MEMORY,
                 "out of memory for a %lux%lu image", (unsigned long)width, (unsigned long)height);
        }
        for (png_uint_32 y = 0; y < height; y++) reader->rows[y] = reader->out->pixels + row_bytes * y;
        png_read_image(png, reader->rows);      /* runs all Adam7 passes when interlaced */
    } else {
        reader->scratch_row = (png_bytep)malloc(row_bytes);
        if (reader->scratch_row == NULL) fail(png, &reader->report, LDM_PNG_ERROR_MEMORY, "out of memory");
        for (int pass = 0; pass < passes; pass++) {
            for (png_uint_32 y = 0; y < height; y++) png_read_row(png, reader->scratch_row, NULL);
        }
    }

    /* Reads the chunks after IDAT (texts there are merged into info) up to IEND. */
    png_read_end(png, info);
    copy_texts(reader);
    return LDM_PNG_OK;
}

int ldm_png_decode(const uint8_t *data, size_t size, int want_pixels,
                   ldm_png_image *out, char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (out == NULL) return LDM_PNG_ERROR_ARGUMENT;
    memset(out, 0, sizeof(*out));

    ldm_png_reader reader;
    memset(&reader, 0, sizeof(reader));
    reader.report.message = message;
    reader.report.message_capacity = message_capacity;
    reader.data = data;
    reader.size = data != NULL ? size : 0;
    reader.out = out;

    /* Short inputs get a precise message before libpng sees them. */
    static const uint8_t signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    if (reader.size == 0) {
        report_set(&reader.report, LDM_PNG_ERROR_FORMAT, "empty file (0 bytes), not a PNG file");
        return LDM_PNG_ERROR_FORMAT;
    }
    if (reader.size < 8 && memcmp(data, signature, reader.size) != 0) {
        report_set(&reader.report, LDM_PNG_ERROR_FORMAT, "Not a PNG file");
        return LDM_PNG_ERROR_FORMAT;
    }

    /* libpng 1.6 allocates (and zeroes) a buffer of the declared length for text and other
     * ancillary chunks before reading them, so a 40-byte file declaring a 2 GiB tEXt chunk
     * costs 2 GiB. With the whole file in memory, any chunk longer than the bytes that follow
     * it is a truncation: reject it before libpng sees it. */
    if (reader.size >= 8 && memcmp(data, signature, 8) == 0) {
        size_t offset = 8;
        while (reader.size - offset >= 8) {
            uint32_t length = ((uint32_t)data[offset] << 24) | ((uint32_t)data[offset + 1] << 16) |
                              ((uint32_t)data[offset + 2] << 8) | (uint32_t)data[offset + 3];
            const uint8_t *type = data + offset + 4;
            size_t remaining = reader.size - offset - 8;
            if ((size_t)length > remaining || remaining - (size_t)length < 4) {
                char name[5];
                for (int i = 0; i < 4; i++) name[i] = (type[i] >= 32 && type[i] < 127) ? (char)type[i] : '?';
                name[4] = '\0';
                report_set(&reader.report, LDM_PNG_ERROR_FORMAT,
                           "file is truncated: chunk %s at byte %zu declares %lu bytes, %zu remain",
                           name, offset, (unsigned long)length, remaining);
                return LDM_PNG_ERROR_FORMAT;
            }
            offset += 12 + (size_t)length;
            if (memcmp(type, "IEND", 4) == 0) break;
        }
    }

    reader.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader.report,
                                        on_png_error, on_png_warning);
    if (reader.png != NULL) reader.info = png_create_info_struct(reader.png);
    int status;
    if (reader.png == NULL || reader.info == NULL) {
        report_set(&reader.report, LDM_PNG_ERROR_MEMORY, "out of memory (cannot create libpng reader)");
        status = LDM_PNG_ERROR_MEMORY;
    } else {
        status = decode_run(&reader, want_pixels);
    }

    png_destroy_read_struct(reader.png != NULL ? &reader.png : NULL,
                            reader.info != NULL ? &reader.info : NULL, NULL);
    free(reader.rows);
    free(reader.scratch_row);
    if (status != LDM_PNG_OK) {
        ldm_png_image_free(out);
        if (message != NULL && message_capacity > 0 && message[0] == '\0') {
            snprintf(message, message_capacity, "libpng failed without a message");
        }
    }
    return status;
}

void ldm_png_image_free(ldm_png_image *image) {
    if (image == NULL) return;
    free(image->pixels);
    if (image->texts != NULL) {
        for (size_t i = 0; i < image->text_count; i++) {
            free(image->texts[i].keyword);
            free(image->texts[i].text);
        }
        free(image->texts);
    }
    memset(image, 0, sizeof(*image));
}

/* ---------------------------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    ldm_png_report report;      /* must stay first: it is libpng's error pointer */
    png_structp png;
    png_infop info;
    uint8_t *data;              /* growing output buffer */
    size_t size;
    size_t capacity;
    const uint8_t *pixels;
    uint32_t width;
    uint32_t height;
    int channels;
    png_textp texts;            /* prepared chunks; strings owned here */
    size_t text_count;
} ldm_png_writer;

static void on_png_write(png_structp png, png_bytep source, size_t length) {
    ldm_png_writer *writer = (ldm_png_writer *)png_get_io_ptr(png);
    if (length > writer->capacity - writer->size) {
        size_t capacity = writer->capacity > 0 ? writer->capacity : 4096;
        while (length > capacity - writer->size) {
            if (capacity > SIZE_MAX / 2) png_error(png, "out of memory (PNG output too large)");
            capacity *= 2;
        }
        uint8_t *grown = (uint8_t *)realloc(writer->data, capacity);
        if (grown == NULL) png_error(png, "out of memory");
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->size, source, length);
    writer->size += length;
}

static void on_png_flush(png_structp png) { (void)png; }

static int encode_run(ldm_png_writer *writer) {
    png_structp png = writer->png;      /* both set before setjmp and never changed */
    png_infop info = writer->info;
    if (setjmp(png_jmpbuf(png))) {
        return writer->report.status != LDM_PNG_OK ? writer->report.status : LDM_PNG_ERROR_FORMAT;
    }
    png_set_write_fn(png, writer, on_png_write, on_png_flush);
    png_set_IHDR(png, info, writer->width, writer->height, 8,
                 writer->channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (writer->text_count > 0) png_set_text(png, info, writer->texts, (int)writer->text_count);
    png_write_info(png, info);
    size_t row_bytes = (size_t)writer->width * (size_t)writer->channels;
    for (uint32_t y = 0; y < writer->height; y++) {
        png_write_row(png, (png_const_bytep)(writer->pixels + row_bytes * y));
    }
    png_write_end(png, NULL);
    return LDM_PNG_OK;
}

static void free_prepared_texts(ldm_png_writer *writer) {
    if (writer->texts == NULL) return;
    for (size_t i = 0; i < writer->text_count; i++) {
        free(writer->texts[i].key);
        free(writer->texts[i].text);
    }
    free(writer->texts);
    writer->texts = NULL;
    writer->text_count = 0;
}

/* Converts the caller's UTF-8 texts into libpng's form: tEXt when Latin-1, else iTXt. */
static int prepare_texts(ldm_png_writer *writer, const ldm_png_text_input *texts, size_t count) {
    if (count == 0) return LDM_PNG_OK;
    if (texts == NULL || count > 100000) {
        report_set(&writer->report, LDM_PNG_ERROR_ARGUMENT, "invalid text chunk list");
        return LDM_PNG_ERROR_ARGUMENT;
    }
    writer->texts = (png_textp)calloc(count, sizeof(png_text));
    if (writer->texts == NULL) {
        report_set(&writer->report, LDM_PNG_ERROR_MEMORY, "out of memory");
        return LDM_PNG_ERROR_MEMORY;
    }
    for (size_t i = 0; i < count; i++) {
        const ldm_png_text_input *input = &texts[i];
        png_text *chunk = &writer->texts[i];
        writer->text_count = i + 1;     /* so free_prepared_texts sees partial work */
        const char *keyword = input->keyword != NULL ? input->keyword : "";
        size_t keyword_length = input->keyword != NULL ? input->keyword_length : 0;
        const char *text = input->text != NULL ? input->text : "";
        size_t text_length = input->text != NULL ? input->text_length : 0;
        int int_length = keyword_length > 200 ? 200 : (int)keyword_length;

        /* Keywords are Latin-1 in every text chunk type. */
        int keyword_nul = 0;
        int keyword_is_latin1 = utf8_latin1_class(keyword, keyword_length, &keyword_nul) == 1 && !keyword_nul;
        if (keyword_is_latin1) {
            chunk->key = utf8_to_latin1(keyword, keyword_length);
            if (chunk->key == NULL) {
                report_set(&writer->report, LDM_PNG_ERROR_MEMORY, "out of memory");
                return LDM_PNG_ERROR_MEMORY;
            }
        }
        if (!keyword_is_latin1 || !keyword_is_valid(chunk->key)) {
            report_set(&writer->report, LDM_PNG_ERROR_ARGUMENT,
                       "invalid PNG text keyword \"%.*s\": a keyword is 1-79 Latin-1 printable "
                       "characters without leading, trailing or double spaces",
                       int_length, keyword);
            return LDM_PNG_ERROR_ARGUMENT;
        }

        int text_nul = 0;
        int text_class = utf8_latin1_class(text, text_length, &text_nul);
        if (text_class < 0) {
            report_set(&writer->report, LDM_PNG_ERROR_ARGUMENT,
                       "PNG text \"%.*s\" is not valid UTF-8", int_length, keyword);
            return LDM_PNG_ERROR_ARGUMENT;
        }
        if (text_nul) {
            report_set(&writer->report, LDM_PNG_ERROR_ARGUMENT,
                       "PNG text \"%.*s\" contains a NUL character", int_length, keyword);
            return LDM_PNG_ERROR_ARGUMENT;
        }
        if (text_class == 1) {
            chunk->compression = PNG_TEXT_COMPRESSION_NONE;         /* tEXt, Latin-1 */
            chunk->text = utf8_to_latin1(text, text_length);
            if (chunk->text != NULL) chunk->text_length = strlen(chunk->text);
        } else {
            chunk->compression = PNG_ITXT_COMPRESSION_NONE;         /* iTXt, UTF-8 */
            chunk->text = copy_bytes(text, text_length);
            chunk->itxt_length = text_length;
            chunk->lang = NULL;
            chunk->lang_key = NULL;
        }
        if (chunk->text == NULL) {
            report_set(&writer->report, LDM_PNG_ERROR_MEMORY, "out of memory");
            return LDM_PNG_ERROR_MEMORY;
        }
    }
    return LDM_PNG_OK;
}

int ldm_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                   const ldm_png_text_input *texts, size_t text_count,
                   uint8_t **out_data, size_t *out_size,
                   char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (out_data == NULL || out_size == NULL) return LDM_PNG_ERROR_ARGUMENT;
    *out_data = NULL;
    *out_size = 0;

    ldm_png_writer writer;
    memset(&writer, 0, sizeof(writer));
    writer.report.message = message;
    writer.report.message_capacity = message_capacity;
    writer.pixels = pixels;
    writer.width = width;
    writer.height = height;
    writer.channels = channels;

    if (channels != 3 && channels != 4) {
        report_set(&writer.report, LDM_PNG_ERROR_ARGUMENT,
                   "cannot write %d channels: PNG output needs 3 (RGB) or 4 (RGBA)", channels);
        return LDM_PNG_ERROR_ARGUMENT;
    }
    if (width < 1 || height < 1 || width > PNG_UINT_31_MAX || height > PNG_UINT_31_MAX ||
        (uint64_t)width * (uint64_t)channels > SIZE_MAX / (uint64_t)height) {
        report_set(&writer.report, LDM_PNG_ERROR_ARGUMENT,
                   "cannot write a %lux%lu image: width and height must be 1...2^31-1",
                   (unsigned long)width, (unsigned long)height);
        return LDM_PNG_ERROR_ARGUMENT;
    }
    if (pixels == NULL) {
        report_set(&writer.report, LDM_PNG_ERROR_ARGUMENT, "no pixels to write");
        return LDM_PNG_ERROR_ARGUMENT;
    }

    int status = prepare_texts(&writer, texts, text_count);
    if (status == LDM_PNG_OK) {
        writer.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &writer.report,
                                             on_png_error, on_png_warning);
        if (writer.png != NULL) writer.info = png_create_info_struct(writer.png);
        if (writer.png == NULL || writer.info == NULL) {
            report_set(&writer.report, LDM_PNG_ERROR_MEMORY, "out of memory (cannot create libpng writer)");
            status = LDM_PNG_ERROR_MEMORY;
        } else {
            status = encode_run(&writer);
        }
        png_destroy_write_struct(writer.png != NULL ? &writer.png : NULL,
                                 writer.info != NULL ? &writer.info : NULL);
    }
    free_prepared_texts(&writer);

    if (status == LDM_PNG_OK) {
        *out_data = writer.data;
        *out_size = writer.size;
    } else {
        free(writer.data);
        if (message != NULL && message_capacity > 0 && message[0] == '\0') {
            snprintf(message, message_capacity, "libpng failed without a message");
        }
    }
    return status;
}

void ldm_png_buffer_free(void *buffer) {
    free(buffer);
}
