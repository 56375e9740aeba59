#ifndef CLIBXML2_SHIM_H
#define CLIBXML2_SHIM_H
#include <libxml/xmlversion.h>
// Debian's libxml2 is built with ICU; its headers would pull in system ICU, which clashes
// with Foundation's own copy. Nothing here uses libxml2's ICU converters.
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

/// xmlFree is a global function pointer, which Swift 6 sees as shared mutable state.
static inline void driftcheck_xml_free(void *pointer) { xmlFree(pointer); }
#endif
