/* Test fixture: stands in for iPXE's linked objects. Each object iPXE links carries an
 * obj_<name> symbol; here the config decides which exist, as REQUIRE_OBJECT does upstream. */
#include <config/general.h>
#include <config/settings.h>

#define OBJ( name ) void obj_ ## name ( void ) {}

OBJ ( ipv4 ) OBJ ( dns ) OBJ ( http ) OBJ ( script ) OBJ ( autoboot_cmd ) OBJ ( ifmgmt_cmd )
OBJ ( image_cmd ) OBJ ( nvo_cmd ) OBJ ( poweroff_cmd ) OBJ ( pxe_image ) OBJ ( bzimage ) OBJ ( null_sanboot )
#ifdef VMWARE_SETTINGS
OBJ ( guestinfo )
#endif
#ifdef DOWNLOAD_PROTO_HTTPS
OBJ ( https )
#endif
#ifdef DOWNLOAD_PROTO_TFTP
OBJ ( tftp )
#endif
