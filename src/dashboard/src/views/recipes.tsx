// The recipes views land in the next commit.
export function RecipesView() { return <h1>Recipes</h1>; }
export function RecipeView({ name }: { name: string }) { return <h1>{name}</h1>; }
