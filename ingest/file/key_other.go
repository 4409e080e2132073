//go:build !unix

package file

import "os"

// keyOf has no device and inode to offer here: no file is followed.
func keyOf(os.FileInfo) (fileKey, bool) { return fileKey{}, false }

func unlinked(os.FileInfo) bool { return false }
