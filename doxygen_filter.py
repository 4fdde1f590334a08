#!/usr/bin/env python3
"""Doxygen input filter for mp's public headers (Doxyfile.in: INPUT_FILTER).

The headers are documented with plain // comments, written to be read in the header itself.
This filter shows them to Doxygen as documentation without changing the headers:
  - the block that opens a file (up to #pragma once) becomes that file's page, verbatim, so
    its examples and aligned tables keep their layout;
  - a run of // lines right before a declaration becomes that declaration's documentation;
  - a // comment after code on the same line documents that member (///<).
Line numbers are kept, so Doxygen's source links point at the right lines.
"""
import re
import sys

TRAILING = re.compile(r'^(.*[;,{)])(\s+)// (.*)$')


def escape(text):
    """Comment text is prose, not Doxygen markup: \\.\\pipe\\x, <pid>, @, & and # as written."""
    return re.sub(r'([\\@&<>#])', r'\\\1', text)


def filter_header(lines):
    out = []
    i = 0
    # The opening block: every line before '#pragma once' that is a comment.
    head = []
    while i < len(lines) and lines[i].startswith('//'):
        head.append(lines[i][2:].rstrip('\n').removeprefix(' '))
        i += 1
    if head:
        # One verbatim paragraph, one output line per input line; the '#pragma once' line,
        # which Doxygen does not need, closes it, so every later line keeps its number.
        head = [text.replace('*/', '* /') for text in head]
        head[0] = '/** \\verbatim ' + head[0]
        out += [text + '\n' for text in head]
        if i < len(lines) and lines[i].strip() == '#pragma once':
            out.append('\\endverbatim @file */\n')
            i += 1
        else:
            out[-1] = out[-1].rstrip('\n') + ' \\endverbatim @file */\n'
    for line in lines[i:]:
        stripped = line.lstrip()
        if stripped.startswith('// ') or stripped.rstrip('\n') == '//':
            indent = line[:len(line) - len(stripped)]
            out.append(indent + '///' + escape(stripped[2:]))
            continue
        m = TRAILING.match(line.rstrip('\n'))
        if m and '"' not in m.group(1) and not m.group(1).lstrip().startswith('#'):
            out.append(m.group(1) + m.group(2) + '///< ' + escape(m.group(3)) + '\n')
            continue
        out.append(line)
    return out


if __name__ == '__main__':
    with open(sys.argv[1], encoding='utf-8') as f:
        sys.stdout.write(''.join(filter_header(f.readlines())))
