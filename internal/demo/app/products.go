package app

// Product is one line of catalog's answer. Stock comes from the stock
// service; Rating only from catalog versions after v1.
type Product struct {
	SKU        string   `json:"sku"`
	Name       string   `json:"name"`
	PriceCents int64    `json:"price_cents"`
	Stock      int64    `json:"stock"`
	Rating     *float64 `json:"rating,omitempty"`
}

// CatalogResponse is the body of catalog's GET /products.
type CatalogResponse struct {
	Version  string    `json:"version"`
	Products []Product `json:"products"`
}

type catalogEntry struct {
	sku    string
	name   string
	price  int64
	rating float64
}

// catalogEntries is what catalog sells. Stock keeps its own inventory keyed
// by the same SKUs, as two real services would.
var catalogEntries = []catalogEntry{
	{"WEFT-001", "Boat shuttle", 2450, 4.7},
	{"WEFT-002", "Warp thread, 500 m", 1290, 4.2},
	{"WEFT-003", "Heddle set", 3800, 3.9},
	{"WEFT-004", "Reed, 10 dent", 5600, 4.5},
	{"WEFT-005", "Table loom", 18900, 4.8},
}

// initialStock is stock's inventory at start.
var initialStock = map[string]int64{
	"WEFT-001": 42,
	"WEFT-002": 120,
	"WEFT-003": 17,
	"WEFT-004": 8,
	"WEFT-005": 3,
}
