// Package gobsafe decodes gob data that comes from outside the process —
// checkpoints read back from an object store — without letting the counts
// it claims make the decoder allocate without bound.
//
// encoding/gob sizes a map (and a slice) from the count the stream claims
// before it reads an element; its documentation says the decoder "does only
// basic sanity checking on decoded input sizes". A corrupt count of a few
// billion entries makes it allocate the whole table. A field the
// destination lacks, however, is skipped element by element, which fails at
// the end of the data. So Decode first decodes the data into a value that
// keeps a single field of the destination: once that succeeds every count
// in the data is backed by its elements, and the real decoding allocates in
// proportion to the data's length.
package gobsafe

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"reflect"
)

// Decode decodes data into v, a pointer to a struct, after skimming it
// into a struct that holds only v's field named keep (a small field the
// encoded type always has, such as its version or run id). It returns the
// decoder's error, from either pass.
func Decode(data []byte, v any, keep string) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("gobsafe: decoding into %T: want a pointer to a struct", v)
	}
	f, ok := t.Elem().FieldByName(keep)
	if !ok {
		return fmt.Errorf("gobsafe: decoding into %T: it has no field %s", v, keep)
	}
	skim := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type}}))
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(skim.Interface()); err != nil {
		return err
	}
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}
