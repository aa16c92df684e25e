#!/usr/bin/python3
"""numpy and zipfile read the zip64 archive of test_npz_zip64 (its member
i holds float32 i*1000 + k*0.5, k < 97*i + 1).
    npz_zip64_check.py ARCHIVE.npz"""
import sys
import zipfile

import numpy as np

path = sys.argv[1]
with zipfile.ZipFile(path) as z:
    assert z.testzip() is None, "a member fails its CRC check"
    infos = z.infolist()
    assert len(infos) == 20, len(infos)
    big = [i.filename for i in infos if i.header_offset > 4096]
    large = [i.filename for i in infos if i.file_size > 4096]
    assert big and large, "no member lies past the lowered zip64 offset or size threshold"
npz = np.load(path)
for i in range(20):
    want = np.float32(i * 1000) + np.arange(97 * i + 1, dtype=np.float32) * np.float32(0.5)
    have = npz[f"m{i:02d}"]
    assert have.dtype == np.float32 and have.tobytes() == want.tobytes(), f"m{i:02d}"
print(f"ok: numpy and zipfile read all 20 members of the zip64 archive ({len(big)} start past 4 KiB, "
      f"{len(large)} are larger)")
