/* HarfBuzz: shapes an emoji's code points to its glyph, over a FreeType face (hb-ft). */
#include <hb.h>
#include <hb-ft.h>
