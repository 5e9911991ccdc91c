/* OpenSSL's message digests (EVP), for the SHA-256 of backup images: libcrypto uses the
 * CPU's SHA extensions where there are some. Already loaded by libvirt, so linking it
 * costs the daemon no memory. */
#include <openssl/evp.h>
