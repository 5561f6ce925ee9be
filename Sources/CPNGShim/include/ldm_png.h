/*
 * ldm_png.h — a small C layer over libpng for LDMIO.
 *
 * libpng reports errors by longjmp. Every setjmp and every libpng callback (error, warning,
 * read-from-memory, write-to-memory) lives in ldm_png.c, so no Swift frame ever sits between a
 * setjmp and its longjmp. Callers see plain return codes and libpng's message copied into a
 * buffer they own.
 *
 * This header uses only standard C types; libpng's own types stay inside ldm_png.c.
 */
#ifndef LDM_PNG_H
#define LDM_PNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. */
enum {
    LDM_PNG_OK = 0,
    LDM_PNG_ERROR_FORMAT = 1,   /* libpng rejected the data (message holds libpng's text) */
    LDM_PNG_ERROR_LIMIT = 2,    /* the header asks for more pixels than the decoder allows */
    LDM_PNG_ERROR_MEMORY = 3,   /* an allocation failed */
    LDM_PNG_ERROR_ARGUMENT = 4  /* the caller passed an unusable image or text to the encoder */
};

/* Decoder limits: width and height at most 2^20 each, width * height at most 2^28 pixels
 * (1 GiB of RGBA), so a hostile header cannot make the decoder allocate absurd memory. */
#define LDM_PNG_MAX_DIMENSION (1u << 20)
#define LDM_PNG_MAX_PIXELS (1ull << 28)

/* The chunk a text came from. */
enum {
    LDM_PNG_TEXT_TEXT = 0,  /* tEXt: Latin-1, uncompressed */
    LDM_PNG_TEXT_ZTXT = 1,  /* zTXt: Latin-1, zlib-compressed */
    LDM_PNG_TEXT_ITXT = 2   /* iTXt: UTF-8, compressed or not */
};

/* One text chunk, keyword and text both converted to UTF-8 and NUL-terminated.
 * The lengths exclude the terminating NUL. */
typedef struct {
    char *keyword;
    size_t keyword_length;
    char *text;
    size_t text_length;
    int kind;               /* LDM_PNG_TEXT_* */
} ldm_png_text;

/* A decoded image. pixels holds width * height * 4 bytes, 8-bit RGBA, row-major, or is NULL
 * when only the header and texts were asked for. color_type, bit_depth and interlace describe
 * the file as stored (PNG colour type 0/2/3/4/6, bit depth 1..16, interlace 0 none / 1 Adam7). */
typedef struct {
    uint32_t width;
    uint32_t height;
    int color_type;
    int bit_depth;
    int interlace;
    uint8_t *pixels;
    ldm_png_text *texts;
    size_t text_count;
} ldm_png_image;

/* Decodes a whole PNG held in memory into 8-bit RGBA.
 *
 * Transformations (no gamma or colour-space change; gAMA, cHRM, sRGB, iCCP, bKGD, sBIT are
 * ignored): gray 1/2/4-bit samples are scaled to 0..255, palette indices are looked up (tRNS
 * gives alpha), a gray or RGB tRNS colour becomes alpha 0 (all other pixels alpha 255),
 * 16-bit samples become 8-bit by round(v * 255 / 65535), gray is replicated into R, G, B, and
 * images without alpha get alpha 255.
 *
 * want_pixels = 0 reads the whole file (so texts after IDAT are seen and the data is checked)
 * but keeps no pixels. On success *out owns its buffers: release them with ldm_png_image_free.
 * On failure *out is left empty and message (capacity bytes, may be NULL) holds the reason. */
int ldm_png_decode(const uint8_t *data, size_t size, int want_pixels,
                   ldm_png_image *out, char *message, size_t message_capacity);

/* Frees the buffers of an image filled by ldm_png_decode and zeroes it. NULL is allowed. */
void ldm_png_image_free(ldm_png_image *image);

/* One text chunk to write; keyword and text are UTF-8 (lengths in bytes, no NUL needed). */
typedef struct {
    const char *keyword;
    size_t keyword_length;
    const char *text;
    size_t text_length;
} ldm_png_text_input;

/* Encodes 8-bit RGB (channels 3) or RGBA (channels 4) pixels, row-major interleaved, into a
 * PNG in memory: no interlace, libpng's default filtering and zlib level.
 *
 * Each text becomes a tEXt chunk when keyword and text are representable in Latin-1, otherwise
 * an uncompressed iTXt chunk (UTF-8). Keywords must be 1-79 Latin-1 printable characters with
 * no leading, trailing or doubled spaces; texts must not contain NUL.
 *
 * On success *out_data is a malloc'd buffer of *out_size bytes: release it with
 * ldm_png_buffer_free. On failure *out_data is NULL and message holds the reason. */
int ldm_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                   const ldm_png_text_input *texts, size_t text_count,
                   uint8_t **out_data, size_t *out_size,
                   char *message, size_t message_capacity);

/* Frees a buffer returned by ldm_png_encode. NULL is allowed. */
void ldm_png_buffer_free(void *buffer);

#ifdef __cplusplus
}
#endif

#endif /* LDM_PNG_H */
