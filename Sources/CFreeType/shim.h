/* FreeType: opens the emoji font, selects its bitmap strike, loads colour glyph bitmaps. */
#include <ft2build.h>
#include FT_FREETYPE_H
