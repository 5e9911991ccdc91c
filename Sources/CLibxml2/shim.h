/* libxml2's parser for strict well-formedness checks. Its ICU support is switched off
 * here: libxml2's headers would include the system ICU's headers, which clash with the
 * copy Foundation ships; nothing used here needs them. */
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
